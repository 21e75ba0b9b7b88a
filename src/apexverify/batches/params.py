"""Batch parameters: one model validates the PUT body, the upload's form fields, the
dashboard's form and ``POST /v1/unit``, so the ranges of the guide are checked in one place.

Integrations send the code fields as strings (``"1"``); pydantic's lax mode accepts them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .countries import ISO_COUNTRIES

RecordTypeField = Literal["email", "phone"]


def _country(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 3166-1 alpha-2 country code")
    code = value.strip().upper()
    if code not in ISO_COUNTRIES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, e.g. US, GB, SG")
    return code


class Targeting(BaseModel):
    model_config = ConfigDict(extra="ignore")

    target_audience: int | None = Field(default=None, ge=1, le=23)
    target_market_industry: int | None = Field(default=None, ge=1, le=115)
    target_objective: int | None = Field(default=None, ge=1, le=16)
    use_account_cache: bool = True
    max_account_cache_backoff: int = Field(default=30, ge=1, le=180)
    use_global_cache: bool = True
    max_global_cache_backoff: int = Field(default=30, ge=1, le=180)


class BatchParameters(Targeting):
    """Everything PUT accepts; ``type`` and ``target_country`` are required."""

    type: RecordTypeField
    target_country: str
    remove_duplicate: bool = True
    remove_wrong_email_format: bool = True
    remove_wrong_phone_format: bool = True

    _check_country = field_validator("target_country", mode="before")(_country)

    def remove_wrong(self) -> bool:
        return (
            self.remove_wrong_email_format
            if self.type == "email"
            else (self.remove_wrong_phone_format)
        )

    def stored(self) -> dict[str, Any]:
        return self.model_dump()


class UnitRequest(Targeting):
    type: RecordTypeField
    unit: str = Field(min_length=1, max_length=512)
    target_country: str = "US"

    _check_country = field_validator("target_country", mode="before")(_country)
