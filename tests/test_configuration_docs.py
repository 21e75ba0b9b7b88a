"""docs/configuration.md lists every setting, and settings parse from the environment."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from apexverify.settings import Settings

DOC = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("name", [f.name for f in fields(Settings)])
def test_every_setting_is_documented(name: str) -> None:
    assert f"`APEXVERIFY_{name.upper()}`" in DOC


def test_environment_values_are_typed() -> None:
    settings = Settings.from_env(
        {
            "APEXVERIFY_PORT": "9000",
            "APEXVERIFY_REFUND_UNKNOWN": "no",
            "APEXVERIFY_DNS_NAMESERVERS": "127.0.0.1:5353, 10.0.0.1",
            "APEXVERIFY_CACHE_REFUND_RATE": "1",
        }
    )
    assert settings.port == 9000
    assert settings.refund_unknown is False
    assert settings.dns_nameservers == ["127.0.0.1:5353", "10.0.0.1"]
    assert settings.cache_refund_rate == 1.0


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ValueError, match="APEXVERIFY_PORT"):
        Settings.from_env({"APEXVERIFY_PORT": "eighty"})
