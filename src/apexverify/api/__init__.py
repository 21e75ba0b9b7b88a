"""The ApexVerify v1 HTTP API: routers per resource, the operations endpoints and the API's
middleware. Mounted beside the dashboard by ``apexverify/app.py``."""

from __future__ import annotations

from fastapi import APIRouter

from . import middleware, ops
from .routers import account, batches, unit

router = APIRouter()
router.include_router(batches.router)
router.include_router(account.router)
router.include_router(unit.router)
router.include_router(ops.router)

install = middleware.install

__all__ = ["install", "router"]
