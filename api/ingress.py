"""The ingress: ``create_api`` assembles the HTTP app; ``Ingress`` binds it to Ray Serve.

The parts, one job each (as vLLM's entrypoints):

- ``api/routers/``: the routes, one module per area (generations, events, artifacts, webhooks, health, ui);
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

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.serve.handle import DeploymentHandle
from scenechain.protocol import GenerateAccepted, GenerateRequest, GenerationStatus
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import operation_id
from api.errors import EXCEPTION_HANDLERS, IdempotencyConflict, Overloaded, document_errors
from api.images import MAX_IMAGE_BYTES
from api.routers import artifacts, events, generations, health, ui, uploads, webhooks
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
# Bodies that may carry a product image: the generate JSON with a base64 reference_image (at most
# 11,200,000 characters, scenechain.protocol) and a raw upload (the file itself).
BODY_LIMITS = {"/api/generate": MAX_BODY_BYTES + 11_200_000, "/api/uploads": MAX_IMAGE_BYTES}

# The order of the paths in /openapi.json; no two routers' paths overlap, so matching ignores it.
ROUTERS = (
    generations.router,
    uploads.router,
    events.router,
    artifacts.router,
    webhooks.router,
    health.router,
    ui.router,
)

OPENAPI_TAGS = [
    {"name": "generations", "description": "Submit, follow (status, live events), list and cancel."},
    {"name": "images", "description": "Scene images, their variations and enhancement traces (PNG, JSON)."},
    {"name": "ops", "description": "Liveness."},
    {"name": "exports", "description": "The storyboard as a contact sheet (PNG) or an animatic (MP4)."},
    {"name": "webhooks", "description": "The signing secret of signed webhook deliveries (fetch, rotate)."},
    {"name": "uploads", "description": "Product images, uploaded once and used by id as reference_image."},
]


def create_api(service: IngressService) -> FastAPI:
    """The FastAPI app on ``service``: every router, the error handlers and the edge middleware."""
    api = FastAPI(
        title="scenechain",
        description="Turns an ad brief into a chained storyboard of scene images.",
        version="0.1.0",
        openapi_tags=OPENAPI_TAGS,
        exception_handlers=EXCEPTION_HANDLERS,
        generate_unique_id_function=operation_id,
    )
    api.state.service = service  # what deps.get_service hands every route
    for router in ROUTERS:
        api.include_router(router)
    api.middleware("http")(_count_requests)
    api.add_middleware(SecurityHeaders)  # outside the counter: its 413 gets them too
    api.add_middleware(HeadAsGet)  # outermost: HEAD runs the whole GET path, headers included

    default_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = document_errors(default_openapi())
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
    """413 for a declared body over its route's limit (refused before it is read), else None."""
    declared = request.headers.get("content-length", "")
    limit = BODY_LIMITS.get(_app_path(request.scope), MAX_BODY_BYTES)
    # The length check first: int() of a 5000-digit header would raise.
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        hint = "send only the documented JSON fields"
        if limit == MAX_IMAGE_BYTES:
            hint = "an image of at most 8 MiB"
        return JSONResponse(
            status_code=413,
            content={
                "detail": f"request body is {declared[:12]}{'...' if len(declared) > 12 else ''} bytes; "
                f"the limit is {limit} bytes ({hint})"
            },
        )
    return None


# -- edge headers and HEAD -------------------------------------------------------------------------

# Every answer: no MIME sniffing, no referrer, never framed.
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The gallery: its own files only (no inline script or style), images/videos as the blob: URLs it
# makes from authenticated fetches, the favicon a data: URL; the API on the same origin.
GALLERY_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load Swagger UI/ReDoc from a CDN with inline script: only never framed.
DOCS_CSP = "frame-ancestors 'none'"
# Everything else (JSON, images, exports, events) is data, never a document that runs anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")


def security_headers(path: str) -> dict[str, str]:
    """The headers the edge sets on an answer to ``path`` (the path inside the app's route prefix)."""
    headers = dict(BASE_HEADERS)
    if path == "/ui" or path.startswith("/ui/"):
        headers["Content-Security-Policy"] = GALLERY_CSP
    elif path.startswith(DOCS_PATHS):
        headers["Content-Security-Policy"] = DOCS_CSP
    else:
        headers["Content-Security-Policy"] = API_CSP
    if path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"  # per-user answers: no browser or proxy keeps a copy
    return headers


def _app_path(scope: Scope) -> str:
    """The request path without the route prefix Serve mounts the app under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class SecurityHeaders:
    """ASGI middleware: ``security_headers`` on every answer (they replace a route's own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(_app_path(scope))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """ASGI middleware: HEAD answers wherever GET does (FastAPI's GET routes alone answer it 405).

    The request runs as GET; its status and headers (Content-Length included) go out with an empty
    body, and the route is cancelled there, so a stream (the SSE events) ends too. The OpenAPI
    document is untouched: no route is added.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        with anyio.CancelScope() as head_only:

            async def send_head(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await send(message)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    head_only.cancel()  # the body is not wanted: stop the route at its next await

            await self.app({**scope, "method": "GET"}, receive, send_head)


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
