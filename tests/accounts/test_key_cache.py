"""The in-process cache of active keys (``accounts/key_cache.py``) and ``key_grant`` over a
real SQLite store (fast tier)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from apexverify.accounts import service as accounts
from apexverify.accounts.key_cache import KeyCache, KeyGrant, active_keys
from apexverify.accounts.keys import KeyKind
from tests.support.fast import Lab

GRANT = KeyGrant(account_id="a", key_id="k", kind="secret")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_the_ttl_only() -> None:
    clock = Clock()
    cache = KeyCache(ttl=10, clock=clock)
    cache.put("apx_one", GRANT, cache.generation())
    clock.now += 9.9
    assert cache.get("apx_one") == GRANT
    assert cache.get("apx_two") is None
    clock.now += 0.1
    assert cache.get("apx_one") is None
    assert len(cache) == 0


def test_a_look_up_begun_before_a_clear_does_not_put_its_answer_back() -> None:
    cache = KeyCache()
    before = cache.generation()
    cache.clear()  # a revocation while the look-up read the database
    cache.put("apx_one", GRANT, before)
    assert cache.get("apx_one") is None
    cache.put("apx_one", GRANT, cache.generation())
    assert cache.get("apx_one") == GRANT


def test_the_cache_starts_over_past_its_bound() -> None:
    cache = KeyCache(max_entries=2)
    for name in ("apx_a", "apx_b", "apx_c"):
        cache.put(name, GRANT, cache.generation())
    assert len(cache) == 1
    assert cache.get("apx_c") == GRANT


def test_key_grant_remembers_active_keys_only(lab: Lab) -> None:
    account_id, key = lab.account()
    active_keys.clear()
    grant = accounts.key_grant(lab.services.store.read, key)
    assert grant is not None
    assert (grant.account_id, grant.kind) == (account_id, KeyKind.SECRET)
    assert active_keys.get(key) == grant
    assert accounts.key_grant(lab.services.store.read, key + "x") is None
    assert active_keys.get(key + "x") is None


def test_key_grant_answers_from_memory_without_opening_a_session(lab: Lab) -> None:
    _account_id, key = lab.account()
    active_keys.clear()
    opened: list[int] = []

    def counting_read() -> AbstractContextManager[Session]:
        opened.append(1)
        return lab.services.store.read()

    first = accounts.key_grant(counting_read, key)
    second = accounts.key_grant(counting_read, key)
    assert first == second is not None
    assert opened == [1]


def test_revoking_a_key_forgets_it_at_once(lab: Lab) -> None:
    account_id, key = lab.account()
    grant = accounts.key_grant(lab.services.store.read, key)
    assert grant is not None
    assert active_keys.get(key) == grant
    with lab.services.store.write() as session:
        accounts.revoke_key(session, account_id, grant.key_id)
        assert active_keys.get(key) is None  # before the commit already
    assert active_keys.get(key) is None
    assert accounts.key_grant(lab.services.store.read, key) is None
    assert active_keys.get(key) is None


def test_a_publishable_key_is_remembered_with_its_kind(lab: Lab) -> None:
    account_id, _key = lab.account()
    with lab.services.store.write() as session:
        new = accounts.create_key(
            session, account_id, "form", publishable=True, origins=["https://shop.example"]
        )
    grant = accounts.key_grant(lab.services.store.read, new.api_key)
    assert grant is not None
    assert grant.kind == KeyKind.PUBLISHABLE
