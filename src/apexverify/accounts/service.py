"""Accounts, API keys and credit top-ups. Functions take a session and never commit: the
caller's transaction (``Store.write()``) does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..credits import from_milli, to_milli
from ..errors import BadRequest, NotFound
from ..store.db import affected
from ..store.models import Account, ApiKey, CreditMovement, utcnow
from .keys import display_prefix, generate_key, hash_key

CREDIT_TYPES = ("email", "phone")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    api_key: str  # plaintext: returned once, never stored


def create_account(
    session: Session,
    name: str,
    *,
    sandbox: bool = False,
    email_credits: float = 0,
    phone_credits: float = 0,
    key_label: str = "default",
) -> tuple[Account, NewKey]:
    account = Account(id=str(uuid.uuid4()), name=name, sandbox=sandbox)
    session.add(account)
    session.flush()
    for credit_type, amount in (("email", email_credits), ("phone", phone_credits)):
        if amount:
            add_credits(session, account.id, credit_type, amount, note="initial credits")
    return account, create_key(session, account.id, key_label)


def create_key(session: Session, account_id: str, label: str = "") -> NewKey:
    get_account(session, account_id)
    plaintext = generate_key()
    key = ApiKey(
        id=str(uuid.uuid4()),
        account_id=account_id,
        label=label[:255],
        key_hash=hash_key(plaintext),
        prefix=display_prefix(plaintext),
    )
    session.add(key)
    session.flush()
    return NewKey(key_id=key.id, api_key=plaintext)


def list_keys(session: Session, account_id: str) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at)
    return list(session.scalars(stmt))


def revoke_key(session: Session, account_id: str, key_id: str) -> None:
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if affected(session, stmt) == 0:
        raise NotFound("No active API key with that id.")


def _active_key(session: Session, condition: Any) -> tuple[Account, ApiKey] | None:
    """The account and the unrevoked key matching ``condition``: the one join behind API-key
    authentication and dashboard sessions."""
    stmt = (
        select(Account, ApiKey)
        .join(ApiKey, ApiKey.account_id == Account.id)
        .where(condition, ApiKey.revoked_at.is_(None))
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def authenticate(session: Session, plaintext: str) -> tuple[Account, ApiKey] | None:
    """The account of an API key, or None when the key is unknown or revoked."""
    return _active_key(session, ApiKey.key_hash == hash_key(plaintext))


def active_key(session: Session, key_id: str) -> tuple[Account, ApiKey] | None:
    """The account of a key id, or None when the key is unknown or revoked."""
    return _active_key(session, ApiKey.id == key_id)


def get_account(session: Session, account_id: str) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"No account {account_id}.")
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.created_at)))


def add_credits(
    session: Session, account_id: str, credit_type: str, amount: float, note: str = "top-up"
) -> None:
    if credit_type not in CREDIT_TYPES:
        raise BadRequest(f"credit type must be one of {', '.join(CREDIT_TYPES)}")
    if not move_credits(
        session, account_id, credit_type, to_milli(amount), kind="topup", note=note
    ):
        get_account(session, account_id)
        raise BadRequest("That adjustment would make the balance negative.")


def balances(account: Account) -> dict[str, float]:
    return {
        "email_credit": from_milli(account.email_credit_milli),
        "phone_credit": from_milli(account.phone_credit_milli),
    }


def _balance_column(credit_type: str) -> Any:
    return Account.email_credit_milli if credit_type == "email" else Account.phone_credit_milli


def move_credits(
    session: Session,
    account_id: str,
    credit_type: str,
    milli: int,
    *,
    kind: str,
    note: str,
    batch_uuid: str | None = None,
) -> bool:
    """Add ``milli`` (negative: take) to a balance and write the ledger row, in the caller's
    transaction. A take that would make the balance negative changes nothing and returns
    False: the check and the change are one conditional UPDATE, safe under concurrency."""
    column = _balance_column(credit_type)
    moved = affected(
        session,
        update(Account)
        .where(Account.id == account_id, column + milli >= 0)
        .values({column: column + milli}),
    )
    if not moved:
        return False
    session.add(
        CreditMovement(
            account_id=account_id,
            batch_uuid=batch_uuid,
            kind=kind,
            credit_type=credit_type,
            amount_milli=milli,
            note=note,
        )
    )
    return True


def key_summary(key: ApiKey) -> dict[str, str | None]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": key.id,
        "label": key.label,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
    }
