"""ApexVerify Python SDK: typed sync and async clients for the v1 API.

    from apexverify.client import Client
    with Client() as client:            # APEXVERIFY_URL / APEXVERIFY_API_KEY
        result = client.verify_file("contacts.txt", type="email", target_country="US",
                                    outputs=["results.xlsx"])

The SDK never imports server code.
"""

from ._client import AsyncClient, Client
from ._errors import (
    ApexVerifyError,
    APIError,
    AuthenticationError,
    BadRequest,
    BatchFailed,
    InsufficientCredits,
    NotFound,
    ParseError,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
)
from ._models import (
    BatchPage,
    BatchStatus,
    BatchSummary,
    Cancellation,
    Content,
    Cost,
    Credits,
    Upload,
)
from ._webhooks import WebhookVerificationError, verify_webhook
from ._workflow import Declined, VerifyResult, verify_file

__all__ = [
    "APIError",
    "ApexVerifyError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "BatchFailed",
    "BatchPage",
    "BatchStatus",
    "BatchSummary",
    "Cancellation",
    "Client",
    "Content",
    "Cost",
    "Credits",
    "Declined",
    "InsufficientCredits",
    "NotFound",
    "ParseError",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Upload",
    "ValidationError",
    "VerifyResult",
    "WebhookVerificationError",
    "verify_file",
    "verify_webhook",
]
