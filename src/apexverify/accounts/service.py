"""Accounts, API keys and credit top-ups. Functions take a session and never commit: the
caller's transaction (``Store.write()``) does.

Keys come in two kinds (``keys.py``): secret keys open every endpoint; publishable keys only
``POST /v1/unit``, and only from the browser origins they list. :func:`authorize` and
:func:`authorize_unit` are those rules; the API's dependencies only translate them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..credits import from_milli, to_milli
from ..errors import ApexError, BadRequest, NotFound, Unauthorized
from ..store.db import affected, on_commit
from ..store.models import Account, ApiKey, ApiKeyOrigin, CreditMovement, utcnow
from .key_cache import KeyGrant, active_keys
from .keys import (
    InvalidOrigin,
    KeyKind,
    display_prefix,
    generate_key,
    hash_key,
    normalize_origins,
)

CREDIT_TYPES = ("email", "phone")


class KeyRefused(ApexError):
    """403: a valid publishable key used where it cannot be (outside ``POST /v1/unit``, or
    from an origin it does not list). The message says which."""

    status_code = 403
    default_message = "Forbidden"


# Why a publishable key is refused, for the developer reading the 403.
ONLY_UNIT = (
    "A publishable key (apx_pub_...) can only call POST /v1/unit, from a web page on one of "
    "its allowed origins; use a secret key on your server for everything else."
)
NO_ORIGIN = (
    "A publishable key (apx_pub_...) works only from a web page on one of its allowed "
    "origins, and this request has no Origin header; use a secret key on a server."
)
OTHER_ORIGIN = (
    "This publishable key is not allowed from this origin; add the origin to the key's "
    "allowed origins (dashboard, Account page) or call from one it lists."
)


@dataclass(frozen=True)
class NewKey:
    key_id: str
    api_key: str  # plaintext: returned once; stored (public_key) only when publishable
    kind: KeyKind = KeyKind.SECRET
    allowed_origins: tuple[str, ...] = ()


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


def create_key(
    session: Session,
    account_id: str,
    label: str = "",
    *,
    publishable: bool = False,
    origins: list[str] | tuple[str, ...] = (),
) -> NewKey:
    """A secret key, or with ``publishable`` one for browsers that lists ``origins`` (at least
    one; normalized, 400 on one that is not ``scheme://host[:port]``)."""
    get_account(session, account_id)
    kind = KeyKind.PUBLISHABLE if publishable else KeyKind.SECRET
    allowed = _checked_origins(kind, origins)
    plaintext = generate_key(kind)
    key = ApiKey(
        id=str(uuid.uuid4()),
        account_id=account_id,
        label=label[:255],
        key_hash=hash_key(plaintext),
        prefix=display_prefix(plaintext),
        kind=kind.value,
        public_key=plaintext if publishable else None,
    )
    session.add(key)
    session.flush()
    session.add_all(
        ApiKeyOrigin(key_id=key.id, origin=origin, position=position)
        for position, origin in enumerate(allowed)
    )
    session.flush()
    return NewKey(key.id, plaintext, kind, tuple(allowed))


def _checked_origins(kind: KeyKind, origins: list[str] | tuple[str, ...]) -> list[str]:
    if kind is KeyKind.SECRET:
        if any(origin.strip() for origin in origins):
            raise BadRequest(
                "Only a publishable key has allowed origins: a secret key must never be "
                "used in a browser."
            )
        return []
    try:
        return normalize_origins(origins)
    except InvalidOrigin as exc:
        raise BadRequest(f"Allowed origins: {exc}.") from None


def allowed_origins(session: Session, key_ids: list[str]) -> dict[str, list[str]]:
    """The allowed origins of each of these keys, in the order given at creation (secret
    keys have none and are absent)."""
    if not key_ids:
        return {}
    stmt = (
        select(ApiKeyOrigin.key_id, ApiKeyOrigin.origin)
        .where(ApiKeyOrigin.key_id.in_(key_ids))
        .order_by(ApiKeyOrigin.key_id, ApiKeyOrigin.position)
    )
    found: dict[str, list[str]] = {}
    for key_id, origin in session.execute(stmt):
        found.setdefault(key_id, []).append(origin)
    return found


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
    # Forgotten now (no request of this process is answered from memory from here on) and
    # again at commit: a look-up that read the key before this transaction committed may
    # have put it back in between.
    active_keys.clear()
    on_commit(session, active_keys.clear)


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


_SECRET = ApiKey.kind == KeyKind.SECRET.value
_PUBLISHABLE = ApiKey.kind == KeyKind.PUBLISHABLE.value


def authenticate(session: Session, plaintext: str) -> tuple[Account, ApiKey] | None:
    """The account of a secret API key, or None when the key is unknown, revoked or
    publishable: what the dashboard's sign-in and the upload guard accept."""
    return _active_key(session, (ApiKey.key_hash == hash_key(plaintext)) & _SECRET)


def active_key(session: Session, key_id: str) -> tuple[Account, ApiKey] | None:
    """The account of a secret key id (a dashboard session), or None when the key is
    unknown, revoked or publishable."""
    return _active_key(session, (ApiKey.id == key_id) & _SECRET)


def find_key(session: Session, plaintext: str) -> tuple[Account, ApiKey] | None:
    """The account of an active key of either kind; what it may do is :func:`authorize`'s
    and :func:`authorize_unit`'s to say."""
    return _active_key(session, ApiKey.key_hash == hash_key(plaintext))


def key_grant(
    open_read: Callable[[], AbstractContextManager[Session]], plaintext: str
) -> KeyGrant | None:
    """What an active key of either kind is, from the process's cache of active keys
    (``key_cache.py``: up to ``TTL_SECONDS`` old) or else the database, through a session of
    ``open_read`` opened only then. None: unknown or revoked. For answers that need only the
    account's id; every rule on the key's kind is the caller's (as :func:`authorize`'s)."""
    cached = active_keys.get(plaintext)
    if cached is not None:
        return cached
    generation = active_keys.generation()
    with open_read() as session:
        found = find_key(session, plaintext)
    if found is None:
        return None
    grant = KeyGrant(account_id=found[0].id, key_id=found[1].id, kind=found[1].kind)
    active_keys.put(plaintext, grant, generation)
    return grant


def authorize(session: Session, plaintext: str | None) -> tuple[Account, ApiKey]:
    """Any endpoint but ``POST /v1/unit``: a secret key (401 without a valid key, 403 for a
    publishable one)."""
    found = find_key(session, plaintext) if plaintext else None
    if found is None:
        raise Unauthorized()
    if found[1].kind == KeyKind.PUBLISHABLE:
        raise KeyRefused(ONLY_UNIT)
    return found


def authorize_unit(
    session: Session, plaintext: str | None, origin: str | None
) -> tuple[Account, ApiKey]:
    """``POST /v1/unit``: a secret key, or a publishable key from one of its origins.
    ``origin`` is the request's ``Origin`` header; browsers always send it on a
    cross-origin POST. (Other clients can forge it: the origin list keeps other web sites
    from using a key in their visitors' browsers, the rate limits bound everyone else.)"""
    found = find_key(session, plaintext) if plaintext else None
    if found is None:
        raise Unauthorized()
    key = found[1]
    if key.kind == KeyKind.PUBLISHABLE:
        if not origin:
            raise KeyRefused(NO_ORIGIN)
        if not _lists_origin(session, key.id, origin):
            raise KeyRefused(OTHER_ORIGIN)
    return found


def cors_allowed(session: Session, origin: str, plaintext: str | None) -> bool:
    """Whether a page at ``origin`` may read the answer to a ``POST /v1/unit`` carrying
    ``plaintext`` (None: no key). A publishable key: its own origins. No key, or one that
    is unknown or revoked: the origins of any active publishable key of the server, so the
    401 of a mistyped key is readable where a form is being set up. A secret key: never."""
    found = find_key(session, plaintext) if plaintext else None
    if found is not None:
        key = found[1]
        return key.kind == KeyKind.PUBLISHABLE and _lists_origin(session, key.id, origin)
    return origin_registered(session, origin)


def origin_registered(session: Session, origin: str) -> bool:
    """Whether some active publishable key lists ``origin``: the answer to a CORS preflight,
    which carries no key (browsers send no custom header on it)."""
    stmt = (
        select(ApiKeyOrigin.key_id)
        .join(ApiKey, ApiKey.id == ApiKeyOrigin.key_id)
        .where(ApiKeyOrigin.origin == origin, ApiKey.revoked_at.is_(None), _PUBLISHABLE)
        .limit(1)
    )
    return session.execute(stmt).first() is not None


def _lists_origin(session: Session, key_id: str, origin: str) -> bool:
    stmt = select(ApiKeyOrigin.key_id).where(
        ApiKeyOrigin.key_id == key_id, ApiKeyOrigin.origin == origin
    )
    return session.execute(stmt).first() is not None


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


def key_summary(key: ApiKey, origins: list[str] | None = None) -> dict[str, Any]:
    """What may be shown of a key: never a secret key's value; a publishable key's in full
    (``public_key``: it is written into web pages anyway), with its allowed ``origins``."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": key.id,
        "label": key.label,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
        "kind": key.kind,
        "public_key": key.public_key if key.kind == KeyKind.PUBLISHABLE else None,
        "allowed_origins": list(origins or []),
    }


def key_summaries(session: Session, account_id: str) -> list[dict[str, Any]]:
    """:func:`key_summary` of every key of the account, oldest first."""
    keys = list_keys(session, account_id)
    origins = allowed_origins(session, [key.id for key in keys])
    return [key_summary(key, origins.get(key.id)) for key in keys]
