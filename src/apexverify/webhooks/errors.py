"""The refusals of the webhooks feature; each carries its HTTP status (``errors.ApexError``).
The API turns :class:`InvalidEndpoint` into its usual 422 naming the field."""

from __future__ import annotations

from ..errors import ApexError, Conflict, NotFound


class InvalidEndpoint(ApexError):
    """An endpoint that cannot be registered: the URL's form, its address, the events."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class EndpointNotFound(NotFound):
    default_message = "No webhook endpoint with this id."


class TooManyEndpoints(Conflict):
    default_message = "This account already has the most webhook endpoints allowed."
