"""Account endpoints: credits and API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...accounts import service as accounts
from ...web.deps import ReadTx, WriteTx
from ..deps import Auth

router = APIRouter(prefix="/v1/account", tags=["account"])


@router.get("/credits", summary="Credit balances")
def credits(account: Auth, tx: ReadTx) -> dict[str, float]:
    """The two separate balances, email and phone."""
    return accounts.balances(accounts.get_account(tx, account.id))


class KeyRequest(BaseModel):
    label: str = Field(default="", max_length=255)


@router.get("/keys", summary="List API keys")
def list_keys(account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Labels and prefixes only: a key's secret is shown once, at creation."""
    return {"keys": [accounts.key_summary(k) for k in accounts.list_keys(tx, account.id)]}


@router.post("/keys", summary="Create an API key")
def create_key(body: KeyRequest, account: Auth, tx: WriteTx) -> dict[str, str]:
    new = accounts.create_key(tx, account.id, body.label)
    return {"id": new.key_id, "api_key": new.api_key, "label": body.label}


@router.delete("/keys/{key_id}", summary="Revoke an API key")
def revoke_key(key_id: str, account: Auth, tx: WriteTx) -> dict[str, str]:
    """Immediate: the next request with that key gets 401; running batches continue."""
    accounts.revoke_key(tx, account.id, key_id)
    return {"message": "Revoked"}
