"""Result counters: verdicts by type, every SMTP reply by class and command stage (no database
needed). The end-to-end count through a live server is in tests/api/test_email_batch_lab.py."""

from __future__ import annotations

from prometheus_client import REGISTRY

from apexverify.metrics import count_result, count_smtp_reply


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_results_are_counted_by_verdict() -> None:
    labels = {"type": "email", "verdict": "wrong"}
    before = _value("apexverify_records_verified_total", labels)
    count_result("email", "wrong")
    assert _value("apexverify_records_verified_total", labels) == before + 1


def test_smtp_replies_are_counted_by_class_and_stage() -> None:
    def value(reply_class: str, stage: str) -> float:
        return _value("apexverify_smtp_replies_total", {"reply_class": reply_class, "stage": stage})

    before = {k: value(*k) for k in (("5xx", "rcpt"), ("2xx", "greeting"), ("4xx", "rcpt"))}
    count_smtp_reply("rcpt", 550)
    count_smtp_reply("rcpt", 551)
    count_smtp_reply("greeting", 220)
    count_smtp_reply("rcpt", 451)
    assert value("5xx", "rcpt") == before[("5xx", "rcpt")] + 2
    assert value("2xx", "greeting") == before[("2xx", "greeting")] + 1
    assert value("4xx", "rcpt") == before[("4xx", "rcpt")] + 1
