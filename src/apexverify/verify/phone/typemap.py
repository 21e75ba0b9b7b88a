"""Every mapping from a source's line type to the guide's ``type`` enum, in one place.

``docs/results.md`` (section Phone) reproduces these tables; a test checks each value is in
:data:`~apexverify.verify.base.PHONE_TYPES` and that every libphonenumber type is covered.

Decisions that are not a plain rename:

* ``PERSONAL_NUMBER`` (e.g. UK 070) and ``UAN`` (company "universal access" numbers, e.g.
  UK 03, PK 111) forward to *some* line chosen by the subscriber; the number says nothing
  about whether that line is mobile or fixed, so they map to ``unknown``. The original name
  is kept in the ``libphonenumber_type`` extra field so nothing is lost.
* ``UNKNOWN`` is what libphonenumber answers for a parsable number outside every allocated
  range; the engine reports it as ``unknown`` type with a ``wrong`` verdict.
* Twilio's ``fixedVoip`` and ``nonFixedVoip`` both map to ``voip``; the distinction is kept in
  the ``provider_line_type`` extra field.
"""

from __future__ import annotations

from phonenumbers import PhoneNumberType

# libphonenumber (phonenumbers.number_type) -> guide type
LIBPHONENUMBER_TYPES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile_or_landline",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.VOICEMAIL: "voicemail_only",
    PhoneNumberType.PERSONAL_NUMBER: "unknown",
    PhoneNumberType.UAN: "unknown",
    PhoneNumberType.UNKNOWN: "unknown",
}

# Names for the ``libphonenumber_type`` extra field (PhoneNumberType has no name lookup).
LIBPHONENUMBER_TYPE_NAMES: dict[int, str] = {
    value: name
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}

# hlrlookup.com v2 ``telephone_number_type`` -> guide type. Values not listed here keep the
# offline type (the provider said nothing we can map, so the range data stays the best fact).
HLRLOOKUP_TYPES: dict[str, str] = {
    "MOBILE": "mobile",
    "LANDLINE": "landline",
    "FIXED_LINE": "landline",
    "MOBILE_OR_LANDLINE": "mobile_or_landline",
    "FIXED_LINE_OR_MOBILE": "mobile_or_landline",
    "VOIP": "voip",
    "TOLL_FREE": "toll_free",
    "PREMIUM_RATE": "premium",
    "SHARED_COST": "shared_cost",
    "PAGER": "pager",
    "VOICEMAIL": "voicemail_only",
    "PERSONAL_NUMBER": "unknown",
    "UAN": "unknown",
}

# Twilio Lookup v2 ``line_type_intelligence.type`` -> guide type (Twilio's documented values).
TWILIO_TYPES: dict[str, str] = {
    "mobile": "mobile",
    "landline": "landline",
    "fixedVoip": "voip",
    "nonFixedVoip": "voip",
    "tollFree": "toll_free",
    "premium": "premium",
    "sharedCost": "shared_cost",
    "pager": "pager",
    "voicemail": "voicemail_only",
    "personal": "unknown",
    "uan": "unknown",
    "unknown": "unknown",
}

# Types with a subscriber record in a mobile network's HLR: only these can ever be ``live`` or
# ``dead``. For every other type ``status`` is ``not_applicable``; ``unknown`` type stays
# ``inconclusive`` because it may well be a mobile line behind a forwarding number.
MOBILE_TYPES = frozenset({"mobile", "mobile_or_landline"})
NON_MOBILE_TYPES = frozenset(
    {"landline", "voip", "toll_free", "premium", "shared_cost", "pager", "voicemail_only"}
)


def offline_status(phone_type: str) -> str:
    """``status`` when no live lookup stands behind the result."""
    return "not_applicable" if phone_type in NON_MOBILE_TYPES else "inconclusive"
