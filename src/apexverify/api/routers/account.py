"""Account endpoints: credits and API keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ...accounts import service as accounts
from ...batches.context import Services
from ...store.models import Account
from ..deps import current_account, get_services

router = APIRouter(prefix="/v1/account", tags=["account"])

Auth = Annotated[Account, Depends(current_account)]
Svc = Annotated[Services, Depends(get_services)]


@router.get("/credits", summary="Credit balances")
def credits(account: Auth, services: Svc) -> dict[str, float]:
    """The two separate balances, email and phone."""
    with services.store.read() as session:
        fresh = accounts.get_account(session, account.id)
        return accounts.balances(fresh)


class KeyRequest(BaseModel):
    label: str = Field(default="", max_length=255)


@router.get("/keys", summary="List API keys")
def list_keys(account: Auth, services: Svc) -> dict[str, Any]:
    """Labels and prefixes only: a key's secret is shown once, at creation."""
    with services.store.read() as session:
        return {"keys": [accounts.key_summary(k) for k in accounts.list_keys(session, account.id)]}


@router.post("/keys", summary="Create an API key")
def create_key(body: KeyRequest, account: Auth, services: Svc) -> dict[str, str]:
    with services.store.write() as session:
        new = accounts.create_key(session, account.id, body.label)
    return {"id": new.key_id, "api_key": new.api_key, "label": body.label}


@router.delete("/keys/{key_id}", summary="Revoke an API key")
def revoke_key(key_id: str, account: Auth, services: Svc) -> dict[str, str]:
    """Immediate: the next request with that key gets 401; running batches continue."""
    with services.store.write() as session:
        accounts.revoke_key(session, account.id, key_id)
    return {"message": "Revoked"}
