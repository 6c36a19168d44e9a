"""scenechain: the public Python client and storyboard exports.

``Client``/``AsyncClient`` talk to a running scenechain server (see docs/client.md); the models
they return are the server's own (``scenechain.protocol``, ``scenechain.events``).
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
