"""Every row of the email verdict table in docs/results.md, run against the loopback lab.

The table is parsed from the document, so the documentation cannot drift from the engine:
a row whose fields differ from what the engine returns fails, and so does a row that has
no scenario here (or a scenario with no row).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apexverify.verify.base import EmailResult, Retry, VerifyContext, VerifyItem
from apexverify.verify.email.engine import EmailVerifier
from apexverify.verify.email.verdicts import RULES, Evidence
from tests.labs.smtp_lab import EmailLab, LabDomains, email_lab

RESULTS_MD = Path(__file__).resolve().parents[3] / "docs" / "results.md"
FLAG_FIELDS = ("is_syntax_error", "is_free", "is_role", "is_disposable", "is_catch_all")


@dataclass(frozen=True)
class Row:
    row_id: str
    evidence: str
    attempt1: str
    valid: bool
    wrong: bool
    unknown: bool
    quality: str
    result: str
    flags: frozenset[str]


def _bool(cell: str) -> bool:
    assert cell in ("true", "false"), cell
    return cell == "true"


def load_rows() -> dict[str, Row]:
    text = RESULTS_MD.read_text(encoding="utf-8")
    email = text.split("## Email", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, Row] = {}
    for line in email.splitlines():
        if not re.match(r"\|\s*E\d+\s*\|", line):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        row_id, evidence, _situation, attempt1, valid, wrong, unknown, quality, result, flags = (
            cells
        )
        rows[row_id] = Row(
            row_id=row_id,
            evidence=evidence.strip("`"),
            attempt1=attempt1,
            valid=_bool(valid),
            wrong=_bool(wrong),
            unknown=_bool(unknown),
            quality=quality,
            result=result,
            flags=frozenset(f.strip() for f in flags.split(",") if f.strip() not in ("", "-")),
        )
    return rows


ROWS = load_rows()

# Row id -> (address for the lab's domains, settings overrides, addresses probed before it
# in the same engine instance).
Scenario = tuple[Callable[[LabDomains], str], dict[str, Any], Callable[[LabDomains], list[str]]]


def _none(d: LabDomains) -> list[str]:
    return []


SCENARIOS: dict[str, Scenario] = {
    "E01": (lambda d: f"alice..smith@{d.rejects}", {}, _none),
    "E02": (lambda d: f"alice@{d.nxdomain}", {}, _none),
    "E03": (lambda d: f"alice@{d.nomail}", {}, _none),
    "E04": (lambda d: f"alice@{d.dangling}", {}, _none),
    "E05": (lambda d: f"alice@{d.nullmx}", {}, _none),
    "E06": (lambda d: f"alice@{d.servfail}", {}, _none),
    "E07": (lambda d: f"alice@{d.private}", {"smtp_allow_private_networks": False}, _none),
    "E08": (lambda d: f"alice@{d.rejects}", {}, _none),
    "E09": (lambda d: f"alice@{d.implicit}", {}, _none),
    "E10": (lambda d: f"alice@{d.firstdown}", {}, _none),
    "E11": (lambda d: f"nobody@{d.rejects}", {}, _none),
    "E12": (lambda d: f"nobody@{d.plain550}", {}, lambda d: [f"bob@{d.plain550}"]),
    "E13": (lambda d: f"nobody@{d.plain550}", {}, _none),
    "E14": (lambda d: f"nobody@{d.m365}", {}, _none),
    "E15": (lambda d: f"full@{d.rejects}", {}, _none),
    "E16": (lambda d: f"unverifiable@{d.rejects}", {}, _none),
    "E17": (lambda d: f"alice@{d.greylist}", {}, _none),
    "E18": (lambda d: f"nobody@{d.tempfail}", {}, _none),
    "E19": (lambda d: f"alice@{d.silent}", {"smtp_timeout_seconds": 0.3}, _none),
    "E20": (lambda d: f"alice@{d.drops}", {}, _none),
    "E21": (lambda d: f"alice@{d.policy}", {}, _none),
    "E22": (lambda d: f"alice@{d.banner}", {}, _none),
    "E23": (lambda d: f"whoever@{d.catchall}", {}, _none),
    "E24": (lambda d: f"info@{d.rejects}", {}, _none),
    "E25": (lambda d: f"alice@{d.disposable}", {}, _none),
    "E26": (lambda d: f"alice@{d.free}", {}, _none),
    "E27": (lambda d: f"δοκιμή@{d.noutf8}", {}, _none),
    "E28": (lambda d: f"alice@{d.tempfail}", {}, _none),
    "E29": (lambda d: f"alice@{d.rejects}", {}, _none),  # with a failing resolver, below
    # The banner's 554 5.7.1 to alice opens the breaker: bob's address is not probed.
    "E30": (lambda d: f"bob@{d.banner}", {}, lambda d: [f"alice@{d.banner}"]),
}

MAX_ATTEMPTS = 2


def test_every_row_has_a_scenario() -> None:
    assert len(ROWS) >= 25
    assert set(ROWS) == set(SCENARIOS)


@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_row_matches_rules_table(row_id: str) -> None:
    """The document and verdicts.RULES agree (role rows downgrade quality to risky)."""
    row = ROWS[row_id]
    rule = RULES[Evidence(row.evidence)]
    assert (rule.valid, rule.wrong, rule.unknown, rule.result) == (
        row.valid,
        row.wrong,
        row.unknown,
        row.result,
    )
    expected_quality = (
        "risky" if "is_role" in row.flags and rule.quality == "good" else rule.quality
    )
    assert row.quality == expected_quality
    if row_id != "E17":  # E17's first attempt is TEMPORARY, its final evidence ACCEPTED
        assert (row.attempt1 == "Retry") == rule.retry


async def _probe(
    lab: EmailLab, verifier: EmailVerifier, address: str, attempt: int
) -> EmailResult | Retry:
    [outcome] = await verifier.verify_many(
        [VerifyItem(address, attempt)], VerifyContext(max_attempts=MAX_ATTEMPTS)
    )
    assert isinstance(outcome, EmailResult | Retry)
    return outcome


@pytest.mark.parametrize("row_id", sorted(SCENARIOS))
async def test_verdict_row(row_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    row = ROWS[row_id]
    address_of, overrides, before = SCENARIOS[row_id]
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings(**overrides))
        if row_id == "E29":

            async def broken(domain: str) -> None:
                raise RuntimeError("simulated engine bug")

            monkeypatch.setattr(verifier._mx, "mail_domain", broken)
        if before(lab.domains):
            await verifier.verify_many(
                [VerifyItem(a) for a in before(lab.domains)], VerifyContext()
            )
        address = address_of(lab.domains)
        first = await _probe(lab, verifier, address, 1)
        if row.attempt1 == "Retry":
            assert isinstance(first, Retry), first
            assert first.after_seconds == lab.settings(**overrides).smtp_greylist_retry_seconds
            final = await _probe(lab, verifier, address, MAX_ATTEMPTS)
        else:
            final = first
        await verifier.aclose()
        assert isinstance(final, EmailResult), final
        got = (final.valid, final.wrong, final.unknown, final.quality, final.result)
        assert got == (row.valid, row.wrong, row.unknown, row.quality, row.result), final
        assert {f for f in FLAG_FIELDS if getattr(final, f)} == row.flags
        assert final.extra["evidence"] == row.evidence
        if row_id == "E07":
            assert lab.connections.total() == 0  # never contacted
        if row_id == "E30":
            assert lab.connections["banner"] == 1  # only the probe that met the block
