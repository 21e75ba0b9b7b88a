"""Real-time verification of one value."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ...batches.context import Services
from ...batches.params import UnitRequest
from ...batches.unit import verify_unit
from ...store.models import Account
from ..deps import current_account, get_services

router = APIRouter(prefix="/v1", tags=["unit"])


@router.post("/unit", summary="Verify one email or phone")
async def unit(
    body: UnitRequest,
    account: Annotated[Account, Depends(current_account)],
    services: Annotated[Services, Depends(get_services)],
) -> dict[str, Any]:
    """The result object is one row of the JSON export."""
    return await verify_unit(services, account, body)
