"""Settings, read once from ``APEXVERIFY_*`` environment variables.

Every field here is listed in ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

_PREFIX = "APEXVERIFY_"


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _parse_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build with :meth:`from_env`; tests pass overrides."""

    database_url: str = "sqlite:///var/apexverify.db"
    data_dir: Path = Path("var")
    secret_key: str = ""  # keyed hashes of the global cache; generated into data_dir if empty
    host: str = "127.0.0.1"
    port: int = 8000

    max_upload_bytes: int = 200 * 1024 * 1024
    rate_limit_per_minute: int = 180
    redis_url: str = ""

    email_price: float = 1.0
    phone_price: float = 1.0
    cache_refund_rate: float = 0.5
    refund_unknown: bool = True

    verify_chunk_size: int = 500
    verify_parallel_chunks: int = 4  # embedded mode: chunks of one batch verified at once
    parse_workers: int = 0  # 0 = one per core
    parse_chunk_bytes: int = 8 * 1024 * 1024  # scale-out: larger uploads parse as chunk jobs
    sandbox_latency_ms: int = 0
    max_verify_attempts: int = 3

    # Email engine
    dns_nameservers: list[str] = field(default_factory=list)
    dns_timeout_seconds: float = 5.0
    smtp_port: int = 25
    smtp_timeout_seconds: float = 10.0
    smtp_greylist_retry_seconds: float = 300.0
    smtp_helo_name: str = "verify.apexverify.local"
    smtp_mail_from: str = "probe@verify.apexverify.local"
    smtp_socks5_proxy: str = ""
    smtp_allow_private_networks: bool = False
    smtp_max_connections: int = 200
    smtp_max_connections_per_mx: int = 5
    smtp_rcpt_per_connection: int = 50
    smtp_max_idle_connections: int = 1000  # idle SMTP connections kept ~10 s for the next chunk

    # Phone engine
    phone_lookup_provider: str = "none"  # none | hlrlookup | twilio
    hlr_api_url: str = "https://api.hlrlookup.com/apiv2/hlr"
    hlr_api_key: str = ""
    hlr_api_secret: str = ""
    twilio_api_url: str = "https://lookups.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    phone_lookup_concurrency: int = 10
    phone_lookup_timeout_seconds: float = 10.0
    phone_lookup_retries: int = 3

    # Scale-out mode
    job_runner: str = "auto"  # auto | inprocess | procrastinate
    storage_dir: Path | None = None  # shared directory for uploads/exports (default data_dir)
    storage_url: str = ""  # s3://bucket[/prefix]: uploads in an S3-compatible bucket instead
    s3_endpoint_url: str = ""  # a non-AWS S3 service (MinIO, Ceph, R2...)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = source.get(_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        values.update(overrides)
        return cls(**values)

    @property
    def uploads_dir(self) -> Path:
        return (self.storage_dir or self.data_dir) / "uploads"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def price_for(self, record_type: str) -> float:
        return self.email_price if record_type == "email" else self.phone_price


def _convert(name: str, annotation: Any, raw: str) -> Any:
    kind = str(annotation)
    try:
        if "bool" in kind:
            return _parse_bool(raw)
        if "list" in kind:
            return _parse_list(raw)
        if "Path" in kind:
            return Path(raw) if raw else None
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{_PREFIX}{name.upper()}: {exc}") from exc
    return raw
