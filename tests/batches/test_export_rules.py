"""The JSON export's keys, through the in-process app on a real SQLite database: each value
once (verbatim repeats folded), file order, kept duplicates sharing the first occurrence's
verdict, removed rows absent, with ``remove_duplicate`` true and false, also at 50,000 rows.
The expected object is computed here from the file by the rules of ``docs/export.md``."""

from __future__ import annotations

import json
import random

import pytest

from tests.support.fast import Lab

KINDS = ("valid", "invalid", "unknown", "catchall", "role")


def _lines(n: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(n):
        r = rng.random()
        if r < 0.05 and lines:
            lines.append(rng.choice(lines))  # verbatim repeat (of anything, malformed too)
        elif r < 0.10 and i:
            j = rng.randrange(i)
            lines.append(f"{KINDS[j % 5].upper()}+{j}@EXAMPLE{j % 7}.com")  # case-only repeat
        elif r < 0.12:
            lines.append(f"broken-{i}@")
        else:
            lines.append(f"{KINDS[i % 5]}+{i}@example{i % 7}.com")
    return lines


def _expected_keys(lines: list[str], remove_duplicate: bool) -> list[str]:
    """Valid-format lines only (malformed ones are removed by default); a case-only repeat is
    a duplicate of its first occurrence; a verbatim repeat is the same JSON key."""
    keys: list[str] = []
    seen_text: set[str] = set()
    seen_address: set[str] = set()
    for value in lines:
        if value.endswith("@"):
            continue
        address = value.lower()
        if value in seen_text or (remove_duplicate and address in seen_address):
            continue
        seen_text.add(value)
        seen_address.add(address)
        keys.append(value)
    return keys


# Both duplicate rules on a small list; the harder one (kept duplicates) also at 50,000 rows.
@pytest.mark.parametrize(("rows", "remove_duplicate"), [(400, True), (400, False), (50_000, False)])
async def test_json_export_keys_each_value_once_in_file_order(
    lab: Lab, rows: int, remove_duplicate: bool
) -> None:
    _account_id, key = lab.account(sandbox=True, email=rows)
    lines = _lines(rows)
    batch_uuid = await lab.upload(
        key, "\n".join(lines) + "\n", remove_duplicate=str(remove_duplicate).lower()
    )
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    await lab.queue.run_all()
    response = await lab.get(
        key, f"/v1/batch/{batch_uuid}/export", format="json", include_statistics="false"
    )
    assert response.status_code == 200
    pairs = json.loads(response.content, object_pairs_hook=list)
    keys = [k for k, _v in pairs]
    assert len(keys) == len(set(keys))  # no key twice: the body is one valid object
    assert keys == _expected_keys(lines, remove_duplicate)

    first: dict[str, dict[str, object]] = {}
    for value, obj in pairs:
        result = dict(obj)
        assert result.pop("email") == value
        address = value.lower()
        if address in first:  # a kept duplicate shares the first occurrence's verdict
            assert not remove_duplicate
            assert result == first[address]
        else:
            first[address] = result
            kind = address.split("+", 1)[0]  # the sandbox's magic prefixes
            if kind in ("valid", "invalid"):
                assert result["valid"] is (kind == "valid"), value
