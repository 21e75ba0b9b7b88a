"""Real-time verification of one value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...batches.params import UnitRequest
from ...batches.unit import verify_unit
from ...web.deps import Svc
from ..deps import Auth

router = APIRouter(prefix="/v1", tags=["unit"])


@router.post("/unit", summary="Verify one email or phone")
async def unit(body: UnitRequest, account: Auth, services: Svc) -> dict[str, Any]:
    """The result object is one row of the JSON export. Credits are reserved and settled in
    short transactions of their own around the verification (see ``batches/unit.py``)."""
    return await verify_unit(services, account, body)
