"""Accounts, keys and credits as services over a real SQLite store (fast tier)."""

from __future__ import annotations

import pytest

from apexverify.accounts import service as accounts
from apexverify.errors import BadRequest, NotFound
from tests.support.fast import Lab


def test_a_take_never_makes_a_balance_negative(lab: Lab) -> None:
    account_id, _key = lab.account(email=2)
    with lab.services.store.write() as session:
        assert accounts.move_credits(session, account_id, "email", -2000, kind="unit", note="x")
        assert not accounts.move_credits(session, account_id, "email", -1, kind="unit", note="x")
    assert lab.balance(account_id) == 0
    assert lab.ledger_sum(account_id) == 0
    with pytest.raises(BadRequest), lab.services.store.write() as session:
        accounts.add_credits(session, account_id, "email", -5)
    assert lab.balance(account_id) == 0


def test_keys_authenticate_until_revoked_through_one_join(lab: Lab) -> None:
    account_id, key = lab.account()
    with lab.services.store.read() as session:
        found = accounts.authenticate(session, key)
        assert found is not None
        assert found[0].id == account_id
        assert accounts.active_key(session, found[1].id) is not None
        assert accounts.authenticate(session, key + "x") is None
        key_id = found[1].id
    with lab.services.store.write() as session:
        accounts.revoke_key(session, account_id, key_id)
    with lab.services.store.read() as session:
        assert accounts.authenticate(session, key) is None
        assert accounts.active_key(session, key_id) is None
    with pytest.raises(NotFound), lab.services.store.write() as session:
        accounts.revoke_key(session, account_id, key_id)  # already revoked


async def test_revoked_key_is_refused_at_once_by_the_api(lab: Lab) -> None:
    _account_id, key = lab.account()
    keys = (await lab.get(key, "/v1/account/keys")).json()["keys"]
    revoked = await lab.client.delete(
        f"/v1/account/keys/{keys[0]['id']}", headers={"X-Api-Key": key}
    )
    assert revoked.status_code == 200
    assert (await lab.get(key, "/v1/account/credits")).status_code == 401
