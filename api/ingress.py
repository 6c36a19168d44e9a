"""The ingress: ``create_api`` assembles the HTTP app; ``Ingress`` binds it to Ray Serve.

The parts, one job each (as vLLM's entrypoints):

- ``api/routers/``: the routes, one module per area (generations, events, artifacts, health, ui);
- ``api/service.py``: ``IngressService``, the logic behind routes and handle methods (no HTTP);
- ``api/deps.py``: the service and caller dependencies and the shared parameter types;
- ``api/errors.py``: typed errors -> HTTP statuses and JSON bodies, in one table;
- ``api/protocol.py``: server-side wire formats (the rest is ``scenechain.protocol``).

The ``Ingress`` deployment builds the app per replica through ``__serve_build_asgi_app__``.

Python handle (same pydantic request model as HTTP)::

    handle = serve.get_app_handle("scenechain")
    accepted = await handle.submit.remote(GenerateRequest(prompt="..."), user="alice")
    status = await handle.wait.remote(accepted.id, user="alice", timeout_s=600)
    # or in one call:
    status = await handle.generate.remote(GenerateRequest(prompt="..."), user="alice")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.serve.handle import DeploymentHandle
from scenechain.protocol import GenerateAccepted, GenerateRequest, GenerationStatus

from api.errors import EXCEPTION_HANDLERS, IdempotencyConflict, Overloaded, document_one_message_422
from api.routers import artifacts, events, generations, health, ui
from api.service import (
    DirectorClient,
    HandleDirectorClient,
    IngressService,
    IngressSettings,
    status_document,
)
from store import metrics

logger = logging.getLogger(__name__)

# A valid generate body is at most ~75 KB even with every character JSON-escaped; refuse more unread.
MAX_BODY_BYTES = 128 * 1024

# The order of the paths in /openapi.json; no two routers' paths overlap, so matching ignores it.
ROUTERS = (generations.router, events.router, artifacts.router, health.router, ui.router)

OPENAPI_TAGS = [
    {"name": "generations", "description": "Submit, follow (status, live events), list and cancel."},
    {"name": "images", "description": "Scene images, their variations and enhancement traces (PNG, JSON)."},
    {"name": "ops", "description": "Liveness."},
    {"name": "exports", "description": "The storyboard as a contact sheet (PNG) or an animatic (MP4)."},
]


def create_api(service: IngressService) -> FastAPI:
    """The FastAPI app on ``service``: every router, the error handlers and the edge middleware."""
    api = FastAPI(
        title="scenechain",
        description="Turns an ad brief into a chained storyboard of scene images.",
        version="0.1.0",
        openapi_tags=OPENAPI_TAGS,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    api.state.service = service  # what deps.get_service hands every route
    for router in ROUTERS:
        api.include_router(router)
    api.middleware("http")(_count_requests)

    default_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = document_one_message_422(default_openapi())
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


async def _count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse oversized bodies unread, then record every request in the metrics by route template."""
    started = time.perf_counter()
    response = _too_large(request) or await call_next(request)
    route = request.scope.get("route")  # the template, e.g. /api/status/{generation_id}
    path = getattr(route, "path", "unmatched")
    metrics.record_request(path, request.method, response.status_code, time.perf_counter() - started)
    return response


def _too_large(request: Request) -> JSONResponse | None:
    """413 for a declared body over MAX_BODY_BYTES (refused before it is read), else None."""
    declared = request.headers.get("content-length", "")
    # The length check first: int() of a 5000-digit header would raise.
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        return JSONResponse(
            status_code=413,
            content={
                "detail": f"request body is {declared[:12]}{'...' if len(declared) > 12 else ''} bytes; "
                f"the limit is {MAX_BODY_BYTES} bytes (send only the documented JSON fields)"
            },
        )
    return None


# -- the deployment ------------------------------------------------------------------------------


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """HTTP + Python-handle entry point of the app; bound in ``serve/app.py``."""

    def __init__(self, settings: dict[str, Any], director: DeploymentHandle) -> None:
        self.service = IngressService(
            IngressSettings.model_validate(settings), HandleDirectorClient(director)
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self.service)

    async def submit(self, request: GenerateRequest | dict[str, Any], user: str) -> GenerateAccepted:
        """Handle: record and start a generation; returns at once (QuotaExceeded, Overloaded when full)."""
        return await self.service.submit(request, user)

    async def status(self, generation_id: str, user: str) -> GenerationStatus:
        """Handle: the status document (GenerationNotFound for another user's id)."""
        return await self.service.status(generation_id, user)

    async def wait(self, generation_id: str, user: str, timeout_s: float = 900.0) -> GenerationStatus:
        """Handle: await a finished status."""
        return await self.service.wait(generation_id, user, timeout_s=timeout_s)

    async def generate(
        self, request: GenerateRequest | dict[str, Any], user: str, timeout_s: float = 900.0
    ) -> GenerationStatus:
        """Handle: submit and await the finished status."""
        return await self.service.generate(request, user, timeout_s=timeout_s)

    async def cancel(self, generation_id: str, user: str) -> GenerationStatus:
        """Handle: cancel a generation."""
        return await self.service.cancel(generation_id, user)


__all__ = [
    "MAX_BODY_BYTES",
    "DirectorClient",
    "HandleDirectorClient",
    "IdempotencyConflict",
    "Ingress",
    "IngressService",
    "IngressSettings",
    "Overloaded",
    "create_api",
    "status_document",
]
