"""Real-time verification of one value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...batches.unit import verify_unit
from ...web.deps import Svc
from ..deps import UnitAuth
from ..schemas import UnitBody, UnitResult, answers, reference_operation_id

router = APIRouter(prefix="/v1", tags=["unit"], generate_unique_id_function=reference_operation_id)


@router.post(
    "/unit",
    summary="Verify one email or phone",
    response_model=None,
    responses=answers(
        UnitResult,
        400,
        402,
        422,
        notes={
            400: "The body is not readable text.",
            402: "Not enough credits for one.",
            403: "A publishable key from an origin it does not list, or with no Origin.",
        },
    ),
)
async def unit(body: UnitBody, account: UnitAuth, services: Svc) -> dict[str, Any]:
    """The result object is one row of the JSON export. Credits are reserved and settled in
    short transactions of their own around the verification (see ``batches/unit.py``)."""
    return await verify_unit(services, account, body)
