"""What a call raises.

Every error the server API answers has the body
``{"error": {"code": "...", "message": "..."}}`` (docs/protocol.md): an
:class:`HeraldAPIError` carries that ``code`` and ``message`` with the HTTP
status, so a caller branches on ``err.code`` (``"invalid_field"``,
``"conflict"``, ``"already_acted"``...) rather than parsing text. A
subclass per status lets ``except`` clauses stay short. A call that got no
answer at all raises :class:`HeraldConnectionError` (or its
:class:`HeraldTimeoutError`), after the retries the client allows.
"""

from __future__ import annotations

from typing import Any


class HeraldError(Exception):
    """The base of everything this package raises."""


class HeraldAPIError(HeraldError):
    """The server answered with an error status.

    ``code`` is the API's error code (``invalid_field``, ``unauthorized``,
    ``conflict``...), or ``None`` when the body was not the API's error
    shape (a proxy's HTML page, say); ``message`` is the API's message, or
    the start of that body.
    """

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code or 'error'}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        #: Seconds the server asked to wait (``Retry-After``), when it did.
        self.retry_after = retry_after


class BadRequestError(HeraldAPIError):
    """400: bad JSON, an unknown field, a value out of range (``invalid_field``)."""


class AuthenticationError(HeraldAPIError):
    """401: no API key, or one the node does not know."""


class PermissionDeniedError(HeraldAPIError):
    """403: a key without the route's scope, another user's token, or ``blocked``."""


class NotFoundError(HeraldAPIError):
    """404: no such job, scheduled send, message, dead event or route."""


class ConflictError(HeraldAPIError):
    """409: ``conflict`` (an idempotency key reused for another body, a
    scheduled send already delivered) or ``already_acted``."""


class PayloadTooLargeError(HeraldAPIError):
    """413: the request body is over the route's limit."""


class RateLimitError(HeraldAPIError):
    """429: past the node's rate limit; retried by the client first."""


class UnavailableError(HeraldAPIError):
    """503: the store is unreachable or the node sheds load. A send's 503
    does not mean "not stored" (docs/protocol.md): the client retries it
    with the same idempotency key."""


class ServerError(HeraldAPIError):
    """Any other 5xx."""


class HeraldConnectionError(HeraldError):
    """No answer: the connection failed or broke before a response came."""


class HeraldTimeoutError(HeraldConnectionError):
    """No answer within the call's timeout."""


_BY_STATUS: dict[int, type[HeraldAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: UnavailableError,
}


def error_for_status(
    status: int,
    code: str | None,
    message: str,
    *,
    body: Any = None,
    retry_after: float | None = None,
) -> HeraldAPIError:
    """The exception for an error answer, of the class its status names."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else HeraldAPIError
    return cls(status, code, message, body=body, retry_after=retry_after)
