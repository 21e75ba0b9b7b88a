"""What the batches feature needs from the running service: built once by the composition
root (``apexverify/composition.py``) for the API, the dashboard, the worker, the CLI and the
tests, which may hand in fakes of the same interfaces."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..jobs.base import JobQueue
from ..jobs.process_host import ProcessHost
from ..settings import Settings
from ..storage import UploadStorage
from ..store.db import Store
from ..verify.base import VerifierFactory
from .retry import RetryPolicy


@dataclass
class Services:
    settings: Settings
    store: Store
    queue: JobQueue
    secret: bytes
    storage: UploadStorage
    engines: VerifierFactory
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Set by ``apexverify serve`` (embedded mode): the process where CPU-heavy job bodies run
    # (a parse, a sandbox chunk: ``jobs/process_host.py``); None: in this process, on a
    # thread (tests, ``apexverify worker``, the CLI).
    host: ProcessHost[Services] | None = None
