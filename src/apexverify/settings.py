"""Settings, read once from ``APEXVERIFY_*`` environment variables.

Every field here is listed in ``docs/configuration.md``; keep the two in step.

:class:`Settings` is a frozen ``pydantic-settings`` model. Values are validated when the
object is built, whichever way it is built: :meth:`Settings.from_env` (the environment, or a
given mapping), ``Settings(field=value, ...)`` (tests, embedding) or :meth:`Settings.replace`.
Any invalid value raises :class:`~apexverify.errors.ConfigurationError` naming the
``APEXVERIFY_*`` variable. ``Settings(...)`` never reads the environment: only
:meth:`from_env` does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigurationError

PREFIX = "APEXVERIFY_"

JobRunner = Literal["auto", "inprocess", "procrastinate"]
PhoneLookupProvider = Literal["none", "hlrlookup", "twilio"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PerSecond = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]

# Values of these settings never appear in error messages (credentials, or URLs that may
# carry a password).
_SENSITIVE = frozenset(
    {
        "secret_key",
        "metrics_token",
        "database_url",
        "redis_url",
        "smtp_socks5_proxy",
        "hlr_api_key",
        "hlr_api_secret",
        "twilio_account_sid",
        "twilio_auth_token",
        "storage_url",
        "s3_endpoint_url",
        "hlr_api_url",
        "twilio_api_url",
    }
)

# The mapping :meth:`Settings.from_env` reads; ``None`` (direct construction) reads nothing.
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar(
    "apexverify_settings_environment", default=None
)


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``port`` -> ``APEXVERIFY_PORT``."""
    return PREFIX + field.upper()


def _port_of(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None


def _check_socks5_entry(entry: str) -> None:
    """One SOCKS5 proxy: ``host:port``, ``user:pass@host:port`` or
    ``socks5://[user:pass@]host:port``."""
    form = "must be empty or [socks5://][user:pass@]host:port, comma-separated"
    if not entry:
        raise ValueError(f"{form} (an entry is empty)")
    parts = urlsplit(entry if "://" in entry else f"socks5://{entry}")
    if parts.scheme != "socks5" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(form)
    if parts.query or parts.fragment:
        raise ValueError(form)
    port = _port_of(parts)
    if port is None:
        raise ValueError(f"{form} (the port is missing)")
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")


def _check_http_url(value: str) -> str:
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be empty or an http:// or https:// URL")
    if _port_of(parts) == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    return value


def _split_host_port(spec: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port or None)."""
    if spec.startswith("["):
        host, closed, rest = spec[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"{spec!r} is not host, host:port or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
    else:
        host, port_text = spec, None  # a bare IPv6 address has several colons
    if not host:
        raise ValueError(f"{spec!r} has no host")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{spec!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _is_domain_name(name: str) -> bool:
    """At least two LDH labels of 1 to 63 characters (an ASCII host name)."""
    labels = name.split(".")
    return len(labels) >= 2 and all(
        0 < len(label) <= 63
        and label.isascii()
        and label.replace("-", "").isalnum()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._environ)
        return {key.lower(): value for key, value in self._environ.items()}


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """The first problem of a validation error, naming its ``APEXVERIFY_*`` variable."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        kind = error.get("type")
        message = str(error.get("msg", "invalid value"))
        if kind == "extra_forbidden":
            message = "not a setting"
        elif kind == "value_error":  # our own validators: the message says it all
            message = message.removeprefix("Value error, ")
        else:  # pydantic's: "Input should be greater than 0" and the like
            message = message.replace("Input should be", "must be", 1)
            raw = error.get("input")
            if field not in _SENSITIVE and isinstance(raw, str | int | float | bool | Path):
                shown = repr(str(raw) if isinstance(raw, Path) else raw)
                message += f" (got {shown[:60]})"
        problems.append((env_name(field) if field else PREFIX + "*", message))
    setting, message = problems[0]
    if len(problems) > 1:
        others = ", ".join(name for name, _ in problems[1:])
        message += f"; also invalid: {others}"
    return ConfigurationError(setting, message)


class Settings(BaseSettings):
    """Runtime configuration. Build with :meth:`from_env`; tests pass keyword values."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,
        frozen=True,
        # An unknown keyword is a typo: refuse it. Unknown APEXVERIFY_* variables in the
        # environment are ignored (the environment source only reads declared fields).
        extra="forbid",
        validate_default=True,
    )

    database_url: str = "sqlite:///var/apexverify.db"
    data_dir: Path = Path("var")
    # keyed hashes of the global cache; generated into data_dir if empty
    secret_key: str = Field(default="", repr=False)
    host: str = "127.0.0.1"
    port: Port = 8000
    # A file of APEXVERIFY_* lines read by from_env (the process environment wins over it).
    env_file: Path | None = None
    # Logs (logs.py): level, and text or one JSON object per line.
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    max_upload_bytes: PositiveInt = 200 * 1024 * 1024
    rate_limit_per_minute: PositiveInt = 180
    # The token bucket of a key; 0 = from PER_MINUTE (that many at once, PER_MINUTE/60 per s).
    rate_limit_capacity: NonNegativeInt = 0
    rate_limit_refill_per_second: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    # Publishable keys (apx_pub_..., POST /v1/unit from browsers) are public: a bucket per
    # key and one per client address, both smaller than a secret key's (docs/browser.md).
    publishable_rate_limit_capacity: PositiveInt = 30
    publishable_rate_limit_refill_per_second: PerSecond = 0.5
    publishable_rate_limit_per_ip_capacity: PositiveInt = 10
    publishable_rate_limit_per_ip_refill_per_second: PerSecond = 0.2
    # A request's line and headers must arrive within this (slowloris sockets are closed).
    header_timeout_seconds: Seconds = 10.0
    # When set, GET /metrics wants "Authorization: Bearer <token>".
    metrics_token: str = Field(default="", repr=False)
    redis_url: str = ""

    email_price: Price = 1.0
    phone_price: Price = 1.0
    cache_refund_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    refund_unknown: bool = True

    verify_chunk_size: PositiveInt = 500
    verify_parallel_chunks: PositiveInt = 4  # embedded mode: chunks of one batch at once
    parse_workers: NonNegativeInt = 0  # 0 = one per core
    # Embedded ``serve``: parses and sandbox chunks run in a job process beside the server
    # (jobs/process_host.py), not on its threads.
    job_process: bool = True
    parse_chunk_bytes: PositiveInt = 8 * 1024 * 1024  # scale-out: larger uploads parse in chunks
    sandbox_latency_ms: NonNegativeInt = 0
    max_verify_attempts: Annotated[int, Field(ge=1)] = 3
    # A batch with nothing due (every row waiting for a retry) this long ends the rest unknown.
    stall_deadline_seconds: Seconds = 1800.0
    # POST /v1/unit answers within this budget (inconclusive at the deadline: unknown).
    unit_timeout_seconds: Seconds = 5.0

    # Email engine
    dns_nameservers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dns_timeout_seconds: Seconds = 5.0
    # Names that must resolve (MX) for NXDOMAIN answers to count as evidence; [] disables.
    dns_canaries: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gmail.com", "outlook.com", "yahoo.com"]
    )
    dns_canary_interval_seconds: NonNegativeSeconds = 60.0
    smtp_port: Port = 25
    smtp_timeout_seconds: Seconds = 10.0
    smtp_greylist_retry_seconds: NonNegativeSeconds = 300.0
    smtp_helo_name: str = "verify.apexverify.local"
    smtp_mail_from: str = "probe@verify.apexverify.local"
    smtp_socks5_proxy: str = ""
    smtp_allow_private_networks: bool = False
    smtp_max_connections: PositiveInt = 200
    smtp_max_connections_per_mx: PositiveInt = 5
    smtp_rcpt_per_connection: PositiveInt = 50
    smtp_max_idle_connections: PositiveInt = 1000  # idle connections kept ~10 s
    # Politeness (docs/politeness.md): an MX that blocks us is left alone this long; the
    # unit servers count rates over (first cool-down after a limit); refused RCPTs per
    # connection before a fresh one (stock Postfix slows down after 10).
    smtp_breaker_seconds: Seconds = 1800.0
    smtp_limit_window_seconds: Seconds = 60.0
    smtp_max_rejected_per_connection: PositiveInt = 8

    # Phone engine
    phone_lookup_provider: PhoneLookupProvider = "none"
    hlr_api_url: str = "https://api.hlrlookup.com/apiv2/hlr"
    hlr_api_key: str = Field(default="", repr=False)  # credentials stay out of repr()
    hlr_api_secret: str = Field(default="", repr=False)
    twilio_api_url: str = "https://lookups.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = Field(default="", repr=False)
    phone_lookup_concurrency: PositiveInt = 10
    phone_lookup_timeout_seconds: Seconds = 10.0
    phone_lookup_retries: NonNegativeInt = 3

    # Webhooks (docs/webhooks.md): 8 attempts over about an hour, doubling from 30 s.
    webhooks_allow_private_networks: bool = False
    webhooks_timeout_seconds: Seconds = 10.0
    webhooks_max_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    webhooks_retry_base_seconds: NonNegativeSeconds = 30.0
    webhooks_retry_max_seconds: NonNegativeSeconds = 1800.0

    # Scale-out mode
    job_runner: JobRunner = "auto"
    storage_dir: Path | None = None  # shared directory for uploads/exports (default data_dir)
    storage_url: str = ""  # s3://bucket[/prefix]: uploads in an S3-compatible bucket instead
    s3_endpoint_url: str = ""  # a non-AWS S3 service (MinIO, Ceph, R2...)

    if not TYPE_CHECKING:
        # Hidden from type checkers so that the pydantic mypy plugin still types the
        # keyword arguments; at run time, a bad value becomes a ConfigurationError.
        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as exc:
                # ``from None``: the pydantic error would repeat the (maybe secret) input.
                raise _configuration_error(exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRONMENT.get()
        if environ is None:
            return (init_settings,)
        return (init_settings, _MappingEnvSource(settings_cls, environ))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Settings from ``env`` (default ``os.environ``); keyword ``overrides`` win.

        Raises :class:`ConfigurationError` naming the variable of the first invalid value.
        """
        with _reading(_with_env_file(os.environ if env is None else env)):
            return cls(**overrides)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied (``ConfigurationError`` if invalid)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(changes)
        return type(self)(**values)

    # -- validation ------------------------------------------------------------------------

    @field_validator(
        "refund_unknown",
        "smtp_allow_private_networks",
        "webhooks_allow_private_networks",
        mode="before",
    )
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or False  # an empty variable is "off", as it always was
        return value

    @field_validator("job_runner", "phone_lookup_provider", "log_format", mode="before")
    @classmethod
    def _choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("dns_nameservers", "dns_canaries", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("dns_nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        servers = [spec.strip() for spec in value]
        for spec in servers:
            _split_host_port(spec)
        return servers

    @field_validator("dns_canaries")
    @classmethod
    def _canaries(cls, value: list[str]) -> list[str]:
        names = [name.strip().rstrip(".").lower() for name in value]
        for name in names:
            if not _is_domain_name(name):
                raise ValueError(f"{name!r} is not a domain name such as gmail.com")
        return names

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("storage_dir", "env_file", mode="before")
    @classmethod
    def _storage_dir(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgres")):
            raise ValueError("must be a sqlite:///... or postgresql://... URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be empty or a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        bucket = parts.netloc
        if (
            parts.scheme != "s3"
            or not bucket
            or any(c in bucket for c in "@:/ ")
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be empty or s3://bucket[/prefix]")
        return value

    @field_validator("hlr_api_url", "twilio_api_url", "s3_endpoint_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("smtp_socks5_proxy")
    @classmethod
    def _socks5_proxy(cls, value: str) -> str:
        """Comma-separated proxies, each ``host:port``, ``user:pass@host:port`` or
        ``socks5://[user:pass@]host:port`` (the email engine's ``proxies.parse_proxy``)."""
        if not value.strip():
            return ""
        entries = [entry.strip() for entry in value.split(",")]
        for number, entry in enumerate(entries, start=1):
            try:
                _check_socks5_entry(entry)
            except ValueError as exc:
                # Which entry, never its text: it may hold a password.
                raise ValueError(f"entry {number}: {exc}" if len(entries) > 1 else exc) from None
        return ",".join(entries)

    # -- derived values --------------------------------------------------------------------

    @property
    def uploads_dir(self) -> Path:
        return (self.storage_dir or self.data_dir) / "uploads"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgres")

    def price_for(self, record_type: str) -> float:
        return self.email_price if record_type == "email" else self.phone_price


@contextmanager
def _reading(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRONMENT.set(environ)
    try:
        yield
    finally:
        _ENVIRONMENT.reset(token)


def _with_env_file(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` plus the ``APEXVERIFY_*`` lines of ``APEXVERIFY_ENV_FILE`` (when set) that
    ``environ`` does not set itself: the file systemd's ``EnvironmentFile=`` reads, so the
    admin CLI finds the server's database from any directory (``--env-file``)."""
    name = env_name("env_file")
    path = next((v for k, v in environ.items() if k.upper() == name and v.strip()), None)
    if path is None:
        return environ
    from dotenv import dotenv_values  # pydantic-settings' own dependency

    if not Path(path).is_file():
        raise ConfigurationError(name, f"no such file: {path}")
    given = {key.upper() for key in environ} | {name}  # a file names no further file
    found = {
        key: value
        for key, value in dotenv_values(path).items()
        if value is not None and key.upper().startswith(PREFIX) and key.upper() not in given
    }
    return {**found, **environ}


__all__ = [
    "PREFIX",
    "JobRunner",
    "LogFormat",
    "LogLevel",
    "PhoneLookupProvider",
    "Settings",
    "env_name",
]
