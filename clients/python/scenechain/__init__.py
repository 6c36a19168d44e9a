"""scenechain (the ``scenechain-client`` distribution): the Python client of a scenechain server.

``Client``/``AsyncClient`` talk to a running server over HTTP (see docs/client.md); the models
they return are the protocol the server itself imports (``scenechain.protocol``,
``scenechain.events``). ``scenechain.cli`` is the ``scenechain-client`` command.
"""

from scenechain.client import (
    APIError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    ConnectionFailed,
    EventsUnavailable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ScenechainError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
    WaitTimeout,
)
from scenechain.events import GenerationEvent
from scenechain.protocol import GenerateAccepted, GenerateRequest, GenerationPage, GenerationStatus

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "EventsUnavailable",
    "GenerateAccepted",
    "GenerateRequest",
    "GenerationEvent",
    "GenerationPage",
    "GenerationStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ScenechainError",
    "ServerError",
    "ServiceUnavailableError",
    "ValidationError",
    "WaitTimeout",
]
