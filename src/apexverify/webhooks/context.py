"""What the webhooks feature needs from the running service. The batches feature's
``Services`` has all of it: this package cannot import that (it sits below), so it names
the parts it uses."""

from __future__ import annotations

from typing import Protocol

from ..jobs.base import JobQueue
from ..settings import Settings
from ..store.db import Store


class WebhookServices(Protocol):
    settings: Settings
    store: Store
    queue: JobQueue
    secret: bytes  # the server's secret key: seals the endpoints' signing secrets
