"""SQLAlchemy models. Credits are stored as integer milli-credits so that debits, refunds and
the never-negative check are exact integer arithmetic inside one SQL statement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Re-exported for the models' users; defined apart so that the parse workers need no SQLAlchemy.
from .kinds import RecordKind as RecordKind


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A stored time as the API writes it: RFC 3339 in UTC, whole seconds, ``Z``."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    email_credit_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    phone_credit_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(255), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # secret | publishable (migration 0006; accounts/keys.py). A publishable key is written
    # into web pages, so its clear value is kept to be shown again; a secret key's never is.
    kind: Mapped[str] = mapped_column(String(16), default="secret", server_default="secret")
    public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ApiKeyOrigin(Base):
    """A browser origin (``scheme://host[:port]``) a publishable key may be used from. One
    row per origin, indexed by origin: a CORS preflight asks "does any active publishable key
    list this origin?" without a key (migration 0006)."""

    __tablename__ = "api_key_origins"
    __table_args__ = (Index("ix_api_key_origins_origin", "origin"),)

    key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    origin: Mapped[str] = mapped_column(String(300), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # the order they were given


class CreditMovement(Base):
    """The ledger: every change of a balance is one row. A batch has at most one debit and one
    refund, which the unique constraint enforces even if two workers race."""

    __tablename__ = "credit_ledger"
    __table_args__ = (UniqueConstraint("batch_uuid", "kind", name="uq_ledger_batch_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    batch_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # topup | debit | refund | unit
    credit_type: Mapped[str] = mapped_column(String(8))  # email | phone
    amount_milli: Mapped[int] = mapped_column(BigInteger)  # signed: debits are negative
    note: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_account_created", "account_id", "created_at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    record_type: Mapped[str] = mapped_column(String(8))
    target_country: Mapped[str] = mapped_column(String(2))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), index=True)
    # Bumped by every PUT/PATCH: a parse only publishes its figures if its generation is still
    # current, so a launch can never charge a cost computed for other parameters.
    parse_generation: Mapped[int] = mapped_column(Integer, default=0)
    file_path: Mapped[str] = mapped_column(String(1024))
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)

    valid_count: Mapped[int] = mapped_column(Integer, default=0)
    wrong_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    cache_account_count: Mapped[int] = mapped_column(Integer, default=0)
    cache_global_count: Mapped[int] = mapped_column(Integer, default=0)
    total_cost_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    net_cost_milli: Mapped[int] = mapped_column(BigInteger, default=0)

    to_verify: Mapped[int] = mapped_column(Integer, default=0)
    verified: Mapped[int] = mapped_column(Integer, default=0)
    charged_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A pass that decided nothing sets these (cleared by the next pass that decides something).
    stall_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    stalled_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # epoch s
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A table upload (the ``column`` extension, migration 0007): the original file kept beside
    # the derived one-value-per-line ``file_path``; NULL for a plain upload (batches/sources).
    source_format: Mapped[str | None] = mapped_column(String(8), nullable=True)
    source_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    source_options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Record(Base):
    """One non-blank line of an uploaded file.

    ``kind`` is valid | wrong | duplicate; ``included`` says whether the row is in the results
    (the remove_* flags); ``result`` is the engine's JSON without the identity field.
    ``key_hash`` is a keyed hash of the normalized value: the dedupe and cache key."""

    __tablename__ = "records"
    __table_args__ = (
        # Deliberately no index on key_hash: random 16-byte keys make every bulk insert pay
        # for B-tree page splits; dedupe and duplicate copies use window functions and
        # ``primary_seq`` over the (batch_pk, seq) key instead.
        UniqueConstraint("batch_pk", "seq", name="uq_records_batch_seq"),
        # The rows still waiting for a verdict (migration 0003): claims stay linear.
        Index(
            "ix_records_unverified",
            "batch_pk",
            "seq",
            sqlite_where=text("kind = 'valid' AND verdict IS NULL"),
            postgresql_where=text("kind = 'valid' AND verdict IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_pk: Mapped[int] = mapped_column(ForeignKey("batches.pk", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str | None] = mapped_column(Text, nullable=True)  # NULL: same as value
    key_hash: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    # Server defaults let the parse's bulk load bind only what differs between rows (see
    # batches/repository/row_load.py): faster on SQLite.
    kind: Mapped[str] = mapped_column(String(12), server_default="valid")
    included: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # seq of the first occurrence, on duplicate rows; exact_repeat: same text as an earlier row
    # (one JSON key for both).
    primary_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exact_repeat: Mapped[bool] = mapped_column(Boolean, server_default=false())
    cache_source: Mapped[str | None] = mapped_column(String(8), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    retry_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # epoch seconds


class ParseChunk(Base):
    """One byte range of an upload parsed by its own job (scale-out mode, large files).

    The rows of a range and ``done`` are written in one transaction, so a retried or doubled
    chunk job finds ``done`` set and inserts nothing; the batch is published once no range of
    its current ``generation`` is left."""

    __tablename__ = "parse_chunks"

    batch_pk: Mapped[int] = mapped_column(
        ForeignKey("batches.pk", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_byte: Mapped[int] = mapped_column(BigInteger)
    end_byte: Mapped[int] = mapped_column(BigInteger)
    done: Mapped[bool] = mapped_column(Boolean, server_default=false())


class CachedResult(Base):
    """Results reusable by later batches. ``account_id`` is '' for the global cache, whose rows
    hold only a keyed hash of the value and a result without the identity field: no PII."""

    __tablename__ = "result_cache"
    __table_args__ = (
        UniqueConstraint("account_id", "record_type", "key_hash", name="uq_cache_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(36))
    record_type: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(16))
    verdict: Mapped[str] = mapped_column(String(8))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    verified_at: Mapped[int] = mapped_column(BigInteger)  # epoch seconds


class WebhookEndpoint(Base):
    """A receiver of an account's batch events (migration 0005). ``secret`` is the signing
    secret sealed with the server's secret key (webhooks/signing.py), never the plain value;
    ``events`` lists the event types sent (empty: all). An endpoint with ``disabled_at`` set
    gets no new deliveries and its pending ones wait (pausing; no command sets it yet)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_account", "account_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(String(255), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookDelivery(Base):
    """One event for one endpoint. ``id`` is the ``webhook-id`` header: the same on every
    attempt, the receiver's idempotency key. status: pending | delivered | failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    batch_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
