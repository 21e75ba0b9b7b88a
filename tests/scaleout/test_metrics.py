"""Result counters: verdicts by type, SMTP replies by class (no database needed)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from apexverify.jobs.metrics import count_result


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_results_are_counted_by_verdict_and_smtp_reply_class() -> None:
    before_5xx = _value("apexverify_smtp_replies_total", {"reply_class": "5xx"})
    before_2xx = _value("apexverify_smtp_replies_total", {"reply_class": "2xx"})
    before_wrong = _value(
        "apexverify_records_verified_total", {"type": "email", "verdict": "wrong"}
    )
    count_result("email", "wrong", {"smtp_code": 550})
    count_result("email", "valid", {"smtp_code": 250})
    count_result("email", "unknown", {"smtp_code": None})  # no SMTP conversation: not counted
    assert _value("apexverify_smtp_replies_total", {"reply_class": "5xx"}) == before_5xx + 1
    assert _value("apexverify_smtp_replies_total", {"reply_class": "2xx"}) == before_2xx + 1
    assert (
        _value("apexverify_records_verified_total", {"type": "email", "verdict": "wrong"})
        == before_wrong + 1
    )
