"""Typed errors of the ingress and the one place that maps typed errors to HTTP answers.

Services raise typed errors (handle callers receive them as they are); ``EXCEPTION_HANDLERS``
turns them into HTTP answers at the edge. Every answer is JSON with a ``detail`` that says what
to fix:

- 401 ``AuthError`` (missing, malformed, expired or wrongly signed token), with
  ``WWW-Authenticate: Bearer``;
- 404 ``GenerationNotFound`` (unknown id, or another user's), ``ArtifactNotFound`` (no such
  image, variation or trace yet), and an unmatched route (the message names the id rule);
- 409 ``IdempotencyConflict`` (key reused with another body), ``ExportNotReady`` (no scene yet);
- 422 ``RequestValidationError`` (one entry per issue, naming field and range),
  ``InvalidIdempotencyKey`` and ``ExportError`` (one message);
- 429 ``QuotaExceeded``: a ``QuotaExceededBody`` and Retry-After;
- 503 ``Overloaded`` and Serve's ``BackPressureError``: an ``OverloadedBody`` and Retry-After;
  ``StorageError`` (the image/trace store is unreachable);
- 400 an unparsable body (invalid UTF-8, JSON nested too deep).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray.serve.exceptions import BackPressureError
from scenechain.protocol import GenerateRequest, range_message
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import AuthError
from api.exports import ExportError
from api.protocol import GENERATION_ID_RULE
from api.quotas import QuotaExceeded
from store import metrics
from store.db import GenerationNotFound
from store.storage import StorageError

logger = logging.getLogger(__name__)


# -- the ingress's own errors --------------------------------------------------------------------


class Overloaded(RuntimeError):
    """The service is at capacity; the client should retry after ``retry_after_s`` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after_s: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason

    def __reduce__(self) -> tuple[type[Overloaded], tuple[str, int, str]]:
        # Handle callers receive it across processes: pickle every constructor argument.
        return type(self), (str(self), self.retry_after_s, self.reason)


class IdempotencyConflict(ValueError):
    """An Idempotency-Key reused with a different request body (HTTP 409)."""


class InvalidIdempotencyKey(ValueError):
    """An Idempotency-Key that is not 1-128 printable ASCII characters (HTTP 422)."""


class ArtifactNotFound(FileNotFoundError):
    """A scene image, variation or trace that does not exist (yet) (HTTP 404)."""


class ExportNotReady(RuntimeError):
    """An export of a generation that has no finished scene yet (HTTP 409)."""


# -- typed error -> HTTP answer --------------------------------------------------------------------


def error_response(status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON answer ``{"detail": ...}`` every refusal uses (as FastAPI's HTTPException does)."""
    return JSONResponse(status_code=status_code, content={"detail": detail}, headers=headers)


def overloaded_response(message: str, retry_after_s: float, reason: str) -> JSONResponse:
    """503 + Retry-After (whole seconds, rounded up) with an ``OverloadedBody``."""
    metrics.record_rejection(reason)
    seconds = max(1, int(-(-retry_after_s // 1)))
    return JSONResponse(
        status_code=503,
        content={"detail": message, "error": "overloaded", "retry_after_s": seconds},
        headers={"Retry-After": str(seconds)},
    )


async def _on_auth_error(_request: Request, exc: AuthError) -> JSONResponse:
    return error_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})


async def _on_generation_not_found(_request: Request, exc: GenerationNotFound) -> JSONResponse:
    # The store raises GenerationNotFound(generation_id); another user's id reads as unknown.
    generation_id = exc.args[0] if exc.args else ""
    return error_response(404, f"generation {generation_id} not found")


async def _on_artifact_not_found(_request: Request, exc: ArtifactNotFound) -> JSONResponse:
    return error_response(404, str(exc))


async def _on_conflict(_request: Request, exc: IdempotencyConflict | ExportNotReady) -> JSONResponse:
    return error_response(409, str(exc))


async def _on_invalid_input(_request: Request, exc: InvalidIdempotencyKey | ExportError) -> JSONResponse:
    return error_response(422, str(exc))


async def _on_quota_exceeded(_request: Request, exc: QuotaExceeded) -> JSONResponse:
    metrics.record_rejection(f"quota_{exc.reason}")
    return JSONResponse(
        status_code=429,
        content={
            "detail": str(exc),
            "error": "quota_exceeded",
            "reason": exc.reason,
            "retry_after_s": exc.retry_after_s,
        },
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def _on_overloaded(_request: Request, exc: Overloaded) -> JSONResponse:
    return overloaded_response(str(exc), exc.retry_after_s, exc.reason)


async def _on_backpressure(request: Request, exc: BackPressureError) -> JSONResponse:
    # A downstream deployment's queue is full (a handle call was refused): same answer as Overloaded.
    retry = exc.retry_after_s
    if retry is None:
        retry = request.app.state.service.settings.retry_after_s
    return overloaded_response(f"service busy ({exc.message}); retry later", retry, "deployment_backpressure")


async def _on_storage_error(request: Request, exc: StorageError) -> JSONResponse:
    logger.warning("storage unavailable for %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, f"storage unavailable: {exc}")


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    # Starlette's stock details ("Not Found", ...) do not say what to fix; these do.
    if exc.status_code == 404 and exc.detail == "Not Found":
        hint = f"; {GENERATION_ID_RULE}" if request.url.path.startswith("/api/") else ""
        detail = f"no route matches {request.method} {request.url.path}{hint}; the routes are at /docs"
        exc = StarletteHTTPException(404, detail=detail, headers=exc.headers)
    elif exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        exc = StarletteHTTPException(
            400,
            detail="request body could not be parsed (invalid UTF-8 or JSON nested too deep); "
            "send a flat JSON object encoded as UTF-8",
        )
    return await http_exception_handler(request, exc)


async def _on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": validation_errors(exc)})


ExceptionHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

# Looked up along the raised error's MRO, so a subclass (AuthError is a ValueError) finds its own row.
EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    AuthError: _on_auth_error,
    GenerationNotFound: _on_generation_not_found,
    ArtifactNotFound: _on_artifact_not_found,
    IdempotencyConflict: _on_conflict,
    ExportNotReady: _on_conflict,
    InvalidIdempotencyKey: _on_invalid_input,
    ExportError: _on_invalid_input,
    QuotaExceeded: _on_quota_exceeded,
    Overloaded: _on_overloaded,
    BackPressureError: _on_backpressure,
    StorageError: _on_storage_error,
    StarletteHTTPException: _on_http_error,
    RequestValidationError: _on_validation_error,
}


# -- validation messages ---------------------------------------------------------------------------


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's error list, each message naming the field and, for bounds, the allowed range."""
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[-1] if loc else ""
        kind = error.get("type")
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = f"unknown field {field!r}; allowed fields: {sorted(GenerateRequest.model_fields)}"
        elif kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed")
            message = f"request body is not valid JSON ({reason} at character {field}); send a JSON object"
        elif loc == ["body"] and kind == "missing":
            message = 'request body is missing; send a JSON object such as {"prompt": "..."}'
        elif loc == ["body"] and kind in ("model_attributes_type", "dict_type"):
            message = 'request body must be a JSON object such as {"prompt": "..."}'
        elif kind == "string_unicode":
            message = f"{field}: not valid Unicode (e.g. an unpaired surrogate escape); send UTF-8 text"
        elif loc and loc[0] == "body" and (allowed := range_message(GenerateRequest, field)):
            message = f"{field}: {message}; {allowed}"
        elif field:
            message = f"{field}: {message}"
        errors.append({"loc": loc, "msg": message, "type": error.get("type")})
    return errors


def document_one_message_422(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with a 422 ``detail`` that may also be one string (the typed 422 errors answer so)."""
    error = spec.get("components", {}).get("schemas", {}).get("HTTPValidationError")
    if error is not None:
        listed = {key: value for key, value in error["properties"]["detail"].items() if key != "title"}
        error["properties"]["detail"] = {
            "anyOf": [listed, {"type": "string"}],
            "title": "Detail",
            "description": "The issues, each naming its field; or one message (e.g. a bad Idempotency-Key).",
        }
    return spec
