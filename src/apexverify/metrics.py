"""Prometheus metrics shared by API processes and workers (one registry per process).

Counters are per process: scrape every API process and every worker (``apexverify worker
--metrics-port``) and sum in Prometheus. The queue gauges (``jobs/queue_metrics.py``) are read
from PostgreSQL at scrape time, so they are cluster-wide whichever process answers. The
environment gauges (:class:`EnvironmentCollector`) are the email engine's health checks of
this process, read at scrape time through a callable the composition root registers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)

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


class EnvironmentCheck(Protocol):
    """One environment check as the engines report it (``verify.base.HealthCheck``; this
    module sits below the engines and cannot import them)."""

    @property
    def name(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def details(self) -> Mapping[str, Any]: ...


EnvironmentSource = Callable[[], Sequence[EnvironmentCheck]]


class EnvironmentCollector(Collector):
    """The engines' environment checks at scrape time (last known state, no network I/O):
    ``apexverify_environment_healthy{check}``, the DNS answer shares of the health window,
    the age of the last canary check, the MX hosts failing before greeting and the SMTP
    breakers open after a block (``smtp_blocks``)."""

    def __init__(self) -> None:
        self.source: EnvironmentSource | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        source = self.source
        try:
            checks = list(source()) if source is not None else []
        except Exception:  # a scrape must not fail because a health report did
            log.exception("environment health report failed")
            checks = []
        healthy = GaugeMetricFamily(
            "apexverify_environment_healthy",
            "1 when the environment check passes (dns, smtp_outbound), 0 when it fails",
            labels=["check"],
        )
        shares = GaugeMetricFamily(
            "apexverify_dns_answer_share",
            "Share of each answer kind among the recent DNS answers of the email engine",
            labels=["answer"],
        )
        answers = GaugeMetricFamily(
            "apexverify_dns_answers_window", "DNS answers in the health window"
        )
        canary_age = GaugeMetricFamily(
            "apexverify_dns_canary_check_age_seconds", "Seconds since the last DNS canary check"
        )
        failed_hosts = GaugeMetricFamily(
            "apexverify_smtp_outbound_failed_hosts",
            "Distinct MX hosts that failed before greeting since the last greeting",
        )
        open_breakers = GaugeMetricFamily(
            "apexverify_smtp_open_breakers",
            "SMTP breakers open after a block (MX hosts and providers not probed meanwhile)",
        )
        for check in checks:
            healthy.add_metric([check.name], 1.0 if check.ok else 0.0)
            details = check.details
            for answer, share in dict(details.get("answer_shares") or {}).items():
                shares.add_metric([str(answer)], float(share))
            if isinstance(details.get("answers"), int):
                answers.add_metric([], float(details["answers"]))
            if isinstance(details.get("canary_check_age_seconds"), int | float):
                canary_age.add_metric([], float(details["canary_check_age_seconds"]))
            if isinstance(details.get("failed_hosts"), int):
                failed_hosts.add_metric([], float(details["failed_hosts"]))
            if isinstance(details.get("open_breakers"), int):
                open_breakers.add_metric([], float(details["open_breakers"]))
        yield from (healthy, shares, answers, canary_age, failed_hosts, open_breakers)


ENVIRONMENT = EnvironmentCollector()
REGISTRY.register(ENVIRONMENT)


def watch_environment(source: EnvironmentSource | None) -> None:
    """Export the checks ``source`` reports (the composition root hands in the engine
    factory's ``health``); the latest call wins, None exports nothing."""
    ENVIRONMENT.source = source
