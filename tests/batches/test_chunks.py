"""How a verification pass cuts a batch into chunks: emails by mail domain (a chunk holds
many addresses of few domains, so the engine reuses connections), phones in whole provider
batches. The claim function is tested on a real SQLite database through the fast lab."""

from __future__ import annotations

import random

from sqlalchemy import select

from apexverify.batches.repository import records
from apexverify.settings import Settings
from apexverify.store.models import Batch, Record
from apexverify.verify.email.engine import EmailVerifier
from apexverify.verify.phone.engine import PhoneVerifier
from tests.support.fast import Lab

DOMAINS, PER_DOMAIN, CHUNK = 100, 20, 500


async def _parsed(lab: Lab) -> tuple[int, dict[int, str]]:
    addresses = [f"user{u}@d{d:03d}.example.com" for d in range(DOMAINS) for u in range(PER_DOMAIN)]
    random.Random(5).shuffle(addresses)  # uploads are not sorted by domain
    _account, key = lab.account()
    batch_uuid = await lab.upload(key, "\n".join(addresses) + "\n")
    with lab.services.store.read() as session:
        batch = session.scalars(select(Batch).where(Batch.uuid == batch_uuid)).one()
        domains = {
            rid: value.rpartition("@")[2]
            for rid, value in session.execute(
                select(Record.id, Record.value).where(Record.batch_pk == batch.pk)
            )
        }
    return batch.pk, domains


async def test_email_chunks_hold_few_domains_and_every_row_once(lab: Lab) -> None:
    batch_pk, domain_of = await _parsed(lab)
    with lab.services.store.read() as session:
        by_domain = list(records.due_chunks(session, batch_pk, CHUNK, by_domain=True))
        in_file_order = list(records.due_chunks(session, batch_pk, CHUNK, by_domain=False))
        claimed = records.claim_ids(session, batch_pk, by_domain[1])

    ids = [rid for chunk in by_domain for rid in chunk]
    assert sorted(ids) == sorted(domain_of)  # every due row in exactly one chunk
    assert [len(c) for c in by_domain] == [CHUNK] * (DOMAINS * PER_DOMAIN // CHUNK)
    per_chunk = CHUNK // PER_DOMAIN
    for chunk in by_domain:
        assert len({domain_of[rid] for rid in chunk}) <= per_chunk + 1
    # The same rows in file order would touch nearly every domain in every chunk.
    assert min(len({domain_of[rid] for rid in c}) for c in in_file_order) > 3 * per_chunk
    # The claim returns the chunk's rows in the chunk's order, with what the engine needs.
    assert [r.id for r in claimed] == by_domain[1]
    assert all(r.normalized.endswith(domain_of[r.id]) and r.key_hash for r in claimed)


def test_phone_chunks_are_whole_provider_batches() -> None:
    offline = PhoneVerifier(Settings())
    assert offline.chunk_size(500) == 500
    hlr = PhoneVerifier(
        Settings(phone_lookup_provider="hlrlookup", hlr_api_key="k", hlr_api_secret="s")
    )
    assert hlr.chunk_size(500) == 480  # the HLR provider takes 80 numbers a request
    assert hlr.chunk_size(50) == 80
    assert EmailVerifier(Settings()).groups_by_domain
    assert not offline.groups_by_domain
