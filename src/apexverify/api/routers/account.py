"""Account endpoints: credits and API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...accounts import service as accounts
from ...store.models import ApiKey, iso
from ...web.deps import ReadTx, WriteTx
from ..deps import Auth
from ..schemas import Credits, KeyList, KeyRequest, NewKey, Success, answers, reference_operation_id

router = APIRouter(
    prefix="/v1/account", tags=["account"], generate_unique_id_function=reference_operation_id
)


@router.get("/credits", summary="Credit balances", response_model=None, responses=answers(Credits))
def credits(account: Auth, tx: ReadTx) -> dict[str, float]:
    """The two separate balances, email and phone."""
    return accounts.balances(accounts.get_account(tx, account.id))


@router.get("/keys", summary="List API keys", response_model=None, responses=answers(KeyList))
def list_keys(account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Labels and prefixes only: a secret key is shown once, at creation. A publishable key
    (extension) is listed in full with its allowed origins: it is not a secret."""
    keys = accounts.list_keys(tx, account.id)
    origins = accounts.allowed_origins(tx, [k.id for k in keys])
    return {"keys": [_key_view(k, origins.get(k.id)) for k in keys]}


def _key_view(key: ApiKey, origins: list[str] | None) -> dict[str, Any]:
    # RFC 3339 in UTC, as every other time of the API: key_summary's isoformat() of the naive
    # datetimes SQLite hands back has no offset, which no date-time parser has to accept.
    return {
        **accounts.key_summary(key, origins),
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
    }


@router.post(
    "/keys",
    summary="Create an API key",
    response_model=None,
    responses=answers(NewKey, 400, 422, notes={400: "The body is not readable text."}),
)
def create_key(body: KeyRequest, account: Auth, tx: WriteTx) -> dict[str, str]:
    new = accounts.create_key(tx, account.id, body.label)
    return {"id": new.key_id, "api_key": new.api_key, "label": body.label}


@router.delete(
    "/keys/{key_id}",
    summary="Revoke an API key",
    response_model=None,
    responses=answers(Success, 404, 422, notes={404: "No active key with this id."}),
)
def revoke_key(key_id: str, account: Auth, tx: WriteTx) -> dict[str, str]:
    """Immediate: the next request with that key gets 401; running batches continue."""
    accounts.revoke_key(tx, account.id, key_id)
    return {"message": "Revoked"}
