"""ApexVerify Python SDK: typed sync and async clients for the v1 API.

    from apexverify.client import Client
    with Client() as client:            # APEXVERIFY_URL / APEXVERIFY_API_KEY
        result = client.verify_file("contacts.csv", type="email", target_country="US",
                                    output="cleaned.csv", keep="deliverable,risky")
        for row in client.iter_results(result.batch_uuid):   # EmailResult / PhoneResult
            print(row.email, row.valid, row.reason)

``Client`` and ``AsyncClient`` share one base (request building, retries, error mapping);
``transport=`` / ``http_client=`` let tests use ``httpx.MockTransport``. See docs/client.md.

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
from ._jsonstream import JSONStreamError
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
from ._params import BatchParams, TargetingParams
from ._results import EmailResult, PhoneResult, Result, Stats
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
    "BatchParams",
    "BatchStatus",
    "BatchSummary",
    "Cancellation",
    "Client",
    "Content",
    "Cost",
    "Credits",
    "Declined",
    "EmailResult",
    "InsufficientCredits",
    "JSONStreamError",
    "NotFound",
    "ParseError",
    "PayloadTooLarge",
    "PhoneResult",
    "RateLimited",
    "Result",
    "ServerError",
    "Stats",
    "TargetingParams",
    "TransportError",
    "Upload",
    "ValidationError",
    "VerifyResult",
    "WebhookVerificationError",
    "verify_file",
    "verify_webhook",
]
