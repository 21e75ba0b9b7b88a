"""``POST /v1/unit`` money rules in the fast tier: reserve, settle, release on failure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from apexverify.verify.base import VerifyItem
from tests.support.fakes import FakeEngines, ScriptedVerifier
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast


async def _unit(lab: Lab, key: str, value: str) -> tuple[int, dict[str, object]]:
    response = await lab.post(key, "/v1/unit", json={"type": "email", "unit": value})
    return response.status_code, response.json()


async def test_a_unit_call_whose_verification_raises_costs_nothing(tmp_path: Path) -> None:
    def broken(_call: int, _items: Sequence[VerifyItem]) -> None:
        raise RuntimeError("engine bug")

    async with open_lab(tmp_path, FakeEngines(ScriptedVerifier(script=broken))) as lab:
        account_id, key = lab.account(email=10)
        status, body = await _unit(lab, key, "valid@example.com")
        assert status == 500
        assert "message" in body
        assert lab.balance(account_id) == 10
        assert lab.ledger_sum(account_id) == 10  # reserved and released: two rows, sum zero


async def test_unit_charges_refunds_unknowns_and_prices_cache_hits(lab: Lab) -> None:
    account_id, key = lab.account(email=10)
    assert (await _unit(lab, key, "valid@example.com"))[1]["valid"] is True
    assert lab.balance(account_id) == 9
    assert (await _unit(lab, key, "unknown@example.com"))[1]["unknown"] is True
    assert lab.balance(account_id) == 9  # inconclusive: refunded
    assert (await _unit(lab, key, "valid@example.com"))[1]["valid"] is True
    assert lab.balance(account_id) == 8.5  # the account cache answered: half price
    assert (await _unit(lab, key, "not an address"))[1]["is_syntax_error"] is True
    assert lab.balance(account_id) == 8.5  # a syntax error is free
    assert lab.ledger_sum(account_id) == lab.balance(account_id)


async def test_unit_needs_credits(lab: Lab) -> None:
    account_id, key = lab.account(email=0)
    status, _body = await _unit(lab, key, "valid@example.com")
    assert status == 402
    assert lab.balance(account_id) == 0
