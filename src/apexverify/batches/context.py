"""What the batch functions need from the running service."""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs.base import JobRunner
from ..settings import Settings
from ..storage import UploadStorage
from ..store.db import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    jobs: JobRunner
    secret: bytes
    storage: UploadStorage
