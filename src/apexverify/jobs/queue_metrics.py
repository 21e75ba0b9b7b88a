"""``apexverify_jobs{task,status}``: procrastinate's queue, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import text

from ..store.db import Store


class QueueCollector(Collector):
    """``apexverify_jobs{status=todo|doing|failed}`` from procrastinate's table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "apexverify_jobs", "Background jobs by task and status", labels=["task", "status"]
        )
        try:
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT task_name, status, COUNT(*) FROM procrastinate_jobs"
                        " WHERE status IN ('todo', 'doing', 'failed') GROUP BY 1, 2"
                    )
                ).all()
        except Exception:  # a scrape must not fail because the database blipped
            rows = []
        for task, status, count in rows:
            gauge.add_metric([task, status], float(count))
        yield gauge


_collectors: dict[str, QueueCollector] = {}


def watch_queue(store: Store) -> None:
    """Register the queue gauge once per process (app factories may run more than once)."""
    if store.url in _collectors or _collectors:
        return
    collector = QueueCollector(store)
    REGISTRY.register(collector)
    _collectors[store.url] = collector
