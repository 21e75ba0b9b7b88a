"""docs/configuration.md lists every setting, and settings parse from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apexverify.errors import ConfigurationError
from apexverify.settings import Settings

DOC = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`APEXVERIFY_{name.upper()}`" in DOC


def test_every_documented_variable_is_a_setting() -> None:
    documented = set(re.findall(r"^\| `APEXVERIFY_([A-Z0-9_]+)` \|", DOC, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_environment_values_are_typed() -> None:
    settings = Settings.from_env(
        {
            "APEXVERIFY_PORT": "9000",
            "APEXVERIFY_REFUND_UNKNOWN": "no",
            "APEXVERIFY_DNS_NAMESERVERS": "127.0.0.1:5353, 10.0.0.1",
            "APEXVERIFY_CACHE_REFUND_RATE": "1",
            "APEXVERIFY_SMTP_ALLOW_PRIVATE_NETWORKS": "on",
            "APEXVERIFY_JOB_RUNNER": "InProcess",
            "APEXVERIFY_STORAGE_DIR": "",
            "APEXVERIFY_DATA_DIR": "/srv/apexverify",
        }
    )
    assert settings.port == 9000
    assert settings.refund_unknown is False
    assert settings.dns_nameservers == ["127.0.0.1:5353", "10.0.0.1"]
    assert settings.cache_refund_rate == 1.0
    assert settings.smtp_allow_private_networks is True
    assert settings.job_runner == "inprocess"
    assert settings.storage_dir is None
    assert settings.data_dir == Path("/srv/apexverify")
    assert settings.uploads_dir == Path("/srv/apexverify/uploads")


def test_a_given_mapping_is_all_that_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEXVERIFY_PORT", "9100")
    assert Settings.from_env({}).port == 8000
    assert Settings().port == 8000  # direct construction never reads the environment
    assert Settings.from_env().port == 9100  # env=None: os.environ


def test_overrides_win_and_unknown_variables_are_ignored() -> None:
    env = {"APEXVERIFY_PORT": "9000", "APEXVERIFY_NOT_A_SETTING": "1", "PATH": "/bin"}
    assert Settings.from_env(env, port=9001).port == 9001
    assert Settings.from_env(env).port == 9000


def test_lists_accept_python_lists_and_empty_strings() -> None:
    assert Settings(dns_nameservers=["10.0.0.1", "[::1]:53"]).dns_nameservers == [
        "10.0.0.1",
        "[::1]:53",
    ]
    assert Settings.from_env({"APEXVERIFY_DNS_NAMESERVERS": ""}).dns_nameservers == []


def test_replace_is_a_validated_copy() -> None:
    settings = Settings(port=9000)
    changed = settings.replace(port=9001, job_runner="inprocess")
    assert (changed.port, changed.job_runner) == (9001, "inprocess")
    assert settings.port == 9000
    with pytest.raises(ConfigurationError) as caught:
        settings.replace(port=70000)
    assert caught.value.setting == "APEXVERIFY_PORT"
    with pytest.raises(ConfigurationError, match="APEXVERIFY_PROT: not a setting"):
        settings.replace(prot=1)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        # not a number / out of range
        ("APEXVERIFY_PORT", "eighty", "valid integer"),
        ("APEXVERIFY_PORT", "0", "greater than or equal to 1"),
        ("APEXVERIFY_SMTP_PORT", "65536", "less than or equal to 65535"),
        ("APEXVERIFY_VERIFY_CHUNK_SIZE", "0", "greater than 0"),
        ("APEXVERIFY_PHONE_LOOKUP_CONCURRENCY", "-1", "greater than 0"),
        ("APEXVERIFY_SMTP_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("APEXVERIFY_DNS_TIMEOUT_SECONDS", "inf", "finite"),
        ("APEXVERIFY_MAX_VERIFY_ATTEMPTS", "0", "greater than or equal to 1"),
        ("APEXVERIFY_CACHE_REFUND_RATE", "1.5", "less than or equal to 1"),
        ("APEXVERIFY_EMAIL_PRICE", "-1", "greater than or equal to 0"),
        ("APEXVERIFY_PARSE_WORKERS", "-2", "greater than or equal to 0"),
        # booleans
        ("APEXVERIFY_REFUND_UNKNOWN", "maybe", "valid boolean"),
        # choices
        ("APEXVERIFY_JOB_RUNNER", "fast", "'auto', 'inprocess' or 'procrastinate'"),
        ("APEXVERIFY_PHONE_LOOKUP_PROVIDER", "carrier-pigeon", "'none', 'hlrlookup' or"),
        # URLs and addresses
        ("APEXVERIFY_DATABASE_URL", "mysql://db/apexverify", "sqlite"),
        ("APEXVERIFY_STORAGE_URL", "ftp://bucket", "s3://bucket[/prefix]"),
        ("APEXVERIFY_STORAGE_URL", "s3://", "s3://bucket[/prefix]"),
        ("APEXVERIFY_HLR_API_URL", "api.hlrlookup.com/apiv2/hlr", "http"),
        ("APEXVERIFY_TWILIO_API_URL", "ftp://lookups.twilio.com", "http"),
        ("APEXVERIFY_S3_ENDPOINT_URL", "minio:9000", "http"),
        ("APEXVERIFY_REDIS_URL", "localhost:6379", "redis://"),
        ("APEXVERIFY_SMTP_SOCKS5_PROXY", "proxy.example", "port is missing"),
        ("APEXVERIFY_SMTP_SOCKS5_PROXY", "socks4://proxy.example:1080", "socks5://"),
        ("APEXVERIFY_SMTP_SOCKS5_PROXY", "proxy.example:99999", "1 to 65535"),
        ("APEXVERIFY_DNS_NAMESERVERS", "10.0.0.1, 10.0.0.2:dns", "1 to 65535"),
        ("APEXVERIFY_DATA_DIR", "", "must not be empty"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.setting == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_secret_values_stay_out_of_messages() -> None:
    url = "mysql://admin:hunter2@db.internal/apexverify"
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"APEXVERIFY_DATABASE_URL": url})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError) as proxy:
        Settings(smtp_socks5_proxy="socks4://user:hunter2@proxy:1080")
    assert "hunter2" not in str(proxy.value)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(job_runner="fast")
    assert caught.value.setting == "APEXVERIFY_JOB_RUNNER"
    with pytest.raises(ConfigurationError, match="APEXVERIFY_PORTT: not a setting"):
        Settings(portt=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "proxy",
    [
        "127.0.0.1:1080",
        "proxy.example:1080",
        "user:secret@proxy.example:1080",
        "socks5://proxy.example:1080",
        "socks5://user:secret@proxy.example:1080",
        "socks5://[::1]:1080",
    ],
)
def test_every_proxy_form_the_email_engine_takes_is_accepted(proxy: str) -> None:
    assert Settings(smtp_socks5_proxy=proxy).smtp_socks5_proxy == proxy


def test_postgres_urls() -> None:
    assert Settings(database_url="postgresql://u@db/apexverify").is_postgres
    assert Settings(database_url="postgres://u@db/apexverify").is_postgres
    assert not Settings().is_postgres


def test_credentials_stay_out_of_repr() -> None:
    settings = Settings(secret_key="k-1", hlr_api_secret="h-2", twilio_auth_token="t-3")
    assert not any(secret in repr(settings) for secret in ("k-1", "h-2", "t-3"))
