"""herald-server: the Python client of Herald's server API.

    from herald_server import Herald
    herald = Herald("http://127.0.0.1:8080", "api-key")
    herald.send(to=["alice"], category="system", body="hi")

See clients/python/README.md; the API itself is docs/protocol.md.
"""

from . import models
from ._transport import RetryPolicy
from .client import Herald, __version__, new_idempotency_key
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HeraldAPIError,
    HeraldConnectionError,
    HeraldError,
    HeraldTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnavailableError,
)

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Herald",
    "HeraldAPIError",
    "HeraldConnectionError",
    "HeraldError",
    "HeraldTimeoutError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "UnavailableError",
    "__version__",
    "models",
    "new_idempotency_key",
]
