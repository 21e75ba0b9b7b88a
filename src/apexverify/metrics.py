"""Prometheus metrics shared by API processes and workers (one registry per process).

Counters are per process: scrape every API process and every worker (``apexverify worker
--metrics-port``) and sum in Prometheus. The queue gauges (``jobs/queue_metrics.py``) are read
from PostgreSQL at scrape time, so they are cluster-wide whichever process answers.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("apexverify_http_requests_total", "HTTP requests answered", ["method", "status"])
REQUEST_SECONDS = Histogram("apexverify_http_request_seconds", "HTTP request latency")
RECORDS_VERIFIED = Counter(
    "apexverify_records_verified_total", "Records given a final verdict", ["type", "verdict"]
)
RECORDS_RETRIED = Counter(
    "apexverify_records_retry_scheduled_total", "Records an engine asked to retry later", ["type"]
)
SMTP_REPLIES = Counter(
    "apexverify_smtp_replies_total",
    "Every SMTP reply the email engine received, by class (2xx/3xx/4xx/5xx) and command",
    ["reply_class", "stage"],
)
CHUNKS = Counter("apexverify_verify_chunks_total", "Verification chunks processed", ["outcome"])


def count_result(record_type: str, verdict: str) -> None:
    RECORDS_VERIFIED.labels(record_type, verdict).inc()


def count_smtp_reply(stage: str, code: int) -> None:
    """The email engine's reply observer: greeting, EHLO/HELO, STARTTLS, MAIL, each RCPT
    (catch-all probes included), RSET and QUIT."""
    reply_class = f"{code // 100}xx" if 200 <= code < 600 else "other"
    SMTP_REPLIES.labels(reply_class, stage).inc()
