"""Domain errors. Each carries the HTTP status the API answers with, so one handler in
``web/errors.py`` turns any of them into ``{"message": ...}``. Features define their own
subclasses next to their rules (``accounts.service.KeyRefused`` 403 for a publishable key used
outside ``POST /v1/unit``, the webhooks package's errors).

    ApexError
    ├── BadRequest (400)
    │   ├── ParseError (400, body also carries ``"status": "parse_error"``)
    │   ├── NotExportable
    │   └── BatchLocked
    ├── Unauthorized (401)
    ├── InsufficientCredits (402)
    ├── (KeyRefused, accounts: 403)
    ├── NotFound (404)
    ├── Conflict (409)
    │   └── NotCancellable
    ├── PayloadTooLarge (413)
    └── StorageFull (507)

    ConfigurationError (a ValueError: a setting is wrong; raised at start-up)
"""

from __future__ import annotations


class ApexError(Exception):
    status_code = 500
    default_message = "Internal Server Error. Please contact support."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequest(ApexError):
    status_code = 400
    default_message = "Bad Request"


class ParseError(BadRequest):
    default_message = "The file could not be parsed: UTF-8 text, one entry per line, no header."


class NotExportable(BadRequest):
    default_message = "The batch can only be exported once its status is verification_done."


class BatchLocked(BadRequest):
    default_message = "The batch has been launched; its parameters can no longer change."


class Unauthorized(ApexError):
    status_code = 401
    default_message = "Unauthorized"


class InsufficientCredits(ApexError):
    status_code = 402
    default_message = "Please reload your credits to proceed with the verification."


class NotFound(ApexError):
    status_code = 404
    default_message = "Not Found"


class Conflict(ApexError):
    status_code = 409
    default_message = "Conflict"


class NotCancellable(Conflict):
    """A cancel of a batch that is not ``verification_ongoing`` (the message says why)."""

    default_message = "The batch is not running; nothing to cancel."


class PayloadTooLarge(ApexError):
    status_code = 413
    default_message = "The uploaded file is larger than this server accepts."


class StorageFull(ApexError):
    """The disk (or the quota) ran out while a file was written; the partial file is gone
    and nothing already stored was touched."""

    status_code = 507
    default_message = (
        "The server's storage is full; the upload was not stored. Nothing else was changed."
    )


class ConfigurationError(ValueError):
    """A setting is missing or invalid. Raised at start-up (``serve``, ``worker``, the CLI),
    before anything can be launched or debited; the message names the ``APEXVERIFY_*``
    variable to fix."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")
