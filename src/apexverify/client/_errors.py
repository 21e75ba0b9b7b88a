"""One exception tree, so callers catch at the level they care about.

ApexVerifyError
├── TransportError          (connection failed after retries)
├── BatchFailed             (the batch ended in internal_error)
├── JSONStreamError         (an export body that is not one JSON object; also a ValueError)
└── APIError                (the server answered an error; .status_code, .body)
    ├── BadRequest          400
    │   └── ParseError      400 with "status": "parse_error"
    ├── AuthenticationError 401
    ├── InsufficientCredits 402
    ├── NotFound            404
    ├── PayloadTooLarge     413
    ├── ValidationError     422 (.detail)
    ├── RateLimited         429 after the retries (.retry_after)
    └── ServerError         5xx
"""

from __future__ import annotations

from typing import Any


class ApexVerifyError(Exception):
    """Base of every error the SDK raises."""


class TransportError(ApexVerifyError):
    """The server could not be reached."""


class BatchFailed(ApexVerifyError):
    """The batch ended in ``internal_error``."""


class APIError(ApexVerifyError):
    status_code = 0

    def __init__(self, message: str, *, status_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body


class BadRequest(APIError):
    pass


class ParseError(BadRequest):
    pass


class AuthenticationError(APIError):
    pass


class InsufficientCredits(APIError):
    pass


class NotFound(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class ValidationError(APIError):
    @property
    def detail(self) -> list[Any]:
        return list((self.body or {}).get("detail", []))


class RateLimited(APIError):
    def __init__(self, message: str, *, status_code: int, body: Any, retry_after: float) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.retry_after = retry_after


class ServerError(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    402: InsufficientCredits,
    404: NotFound,
    413: PayloadTooLarge,
    422: ValidationError,
}


def error_for(status: int, body: Any, retry_after: float = 0.0) -> APIError:
    message = body.get("message") if isinstance(body, dict) else None
    if status == 422 and isinstance(body, dict) and not message:
        # Our server's 422 carries a message naming the fields; FastAPI's plain one does not.
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
            for e in body.get("detail", [])
        )
    message = message or f"HTTP {status}"
    if status == 429:
        return RateLimited(message, status_code=status, body=body, retry_after=retry_after)
    if status == 400 and isinstance(body, dict) and body.get("status") == "parse_error":
        return ParseError(message, status_code=status, body=body)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(message, status_code=status, body=body)
