"""Typed errors of the ingress and the one place that maps typed errors to HTTP answers.

Services raise typed errors (handle callers receive them as they are); ``EXCEPTION_HANDLERS``
turns them into HTTP answers at the edge. Every answer is JSON with a ``detail`` that says what
to fix:

- 401 ``AuthError`` (missing, malformed, expired or wrongly signed token), with
  ``WWW-Authenticate: Bearer``;
- 404 ``GenerationNotFound`` (unknown id, or another user's), ``ArtifactNotFound`` (no such
  image, variation or trace yet), and an unmatched route (the message names the id rule);
- 409 ``IdempotencyConflict`` (key reused with another body), ``ExportNotReady`` (no scene yet);
- 422 ``RequestValidationError`` (one entry per issue, naming field and range), ``InvalidWebhook``
  (a refused webhook_url or webhook_events, one entry naming the field),
  ``InvalidIdempotencyKey`` and ``ExportError`` (one message);
- 429 ``QuotaExceeded``: a ``QuotaExceededBody`` and Retry-After;
- 503 ``Overloaded`` and Serve's ``BackPressureError``: an ``OverloadedBody`` and Retry-After;
  ``StorageError`` (the image/trace store is unreachable);
- 400 an unparsable body (invalid UTF-8, JSON nested too deep);
- product reference images (``api.images``): 404 ``UploadNotFound`` (unknown, or another user's
  upload id), 413 ``ReferenceImageTooLarge``, 415 ``UnsupportedUploadType``, 422 any other
  ``InvalidReferenceImage`` (format, base64, truncated, too many pixels), one message each.

The OpenAPI document says the same (``error_responses``, ``document_errors``): every route lists
each of these statuses it can answer, with its JSON model (``ErrorBody``, ``ValidationErrorBody``,
``QuotaExceededBody``, ``OverloadedBody``) and its headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Union

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from ray.serve.exceptions import BackPressureError
from scenechain.protocol import (
    GenerateRequest,
    OverloadedBody,
    QuotaExceededBody,
    range_message,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import AuthError
from api.exports import ExportError
from api.images import InvalidReferenceImage, ReferenceImageTooLarge, UnsupportedUploadType, UploadNotFound
from api.protocol import GENERATION_ID_RULE
from api.quotas import QuotaExceeded
from director.webhooks import InvalidWebhook
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


class InvalidHeader(ValueError):
    """A request header whose value cannot be read (Cancel-After, Prefer) (HTTP 422)."""


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


async def _on_invalid_input(
    _request: Request, exc: InvalidIdempotencyKey | InvalidHeader | ExportError
) -> JSONResponse:
    return error_response(422, str(exc))


async def _on_invalid_webhook(_request: Request, exc: InvalidWebhook) -> JSONResponse:
    # Shaped like a validation error: the issue is one body field (webhook_url or webhook_events).
    detail = [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _on_upload_not_found(_request: Request, exc: UploadNotFound) -> JSONResponse:
    return error_response(404, str(exc))


async def _on_invalid_reference_image(_request: Request, exc: InvalidReferenceImage) -> JSONResponse:
    # 413: the file is over the size limit; 415: an upload's Content-Type; 422: anything else wrong
    status = 422
    if isinstance(exc, ReferenceImageTooLarge):
        status = 413
    elif isinstance(exc, UnsupportedUploadType):
        status = 415
    return error_response(status, str(exc))


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
    InvalidHeader: _on_invalid_input,
    InvalidWebhook: _on_invalid_webhook,
    ExportError: _on_invalid_input,
    UploadNotFound: _on_upload_not_found,
    InvalidReferenceImage: _on_invalid_reference_image,
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


# -- the same table, in the OpenAPI document -------------------------------------------------------


class ErrorBody(BaseModel):
    """A refusal: one message that says what to fix (every error status but 422, 429 and an overload)."""

    detail: str = Field(description="What was refused and what to fix, e.g. 'generation 1a2b not found'.")


class ValidationIssue(BaseModel):
    """One problem of a refused request (HTTP 422)."""

    loc: list[str] = Field(description="Where: 'body', 'query', 'path' or 'header', then the field name.")
    msg: str = Field(description="What is wrong, naming the field and, for bounds, the allowed range.")
    type: str | None = Field(
        default=None, description="The kind of problem, e.g. 'missing', 'less_than_equal'."
    )


class ValidationErrorBody(BaseModel):
    """HTTP 422: the request parsed, but a value is not acceptable."""

    detail: list[ValidationIssue] | str = Field(
        description="The issues, each naming its field; or one message (a bad Idempotency-Key, export options)."
    )


@dataclass(frozen=True)
class ErrorDoc:
    """How one refusal reads in the OpenAPI document: status, JSON model, cause."""

    status: int
    model: type[BaseModel]
    description: str


# The statuses of EXCEPTION_HANDLERS as documentation (a unit test holds the two tables together).
ERROR_DOCS: dict[type[Exception], ErrorDoc] = {
    AuthError: ErrorDoc(401, ErrorBody, "Missing, malformed, expired or wrongly signed bearer token."),
    GenerationNotFound: ErrorDoc(404, ErrorBody, "No such generation of the caller (unknown, or another's)."),
    ArtifactNotFound: ErrorDoc(404, ErrorBody, "No such image, variation or trace (yet)."),
    UploadNotFound: ErrorDoc(404, ErrorBody, "No such upload of the caller (unknown, or another's)."),
    IdempotencyConflict: ErrorDoc(409, ErrorBody, "The Idempotency-Key was used before with another body."),
    ExportNotReady: ErrorDoc(409, ErrorBody, "The generation has no finished scene to export yet."),
    RequestValidationError: ErrorDoc(
        422, ValidationErrorBody, "A parameter or body field is invalid (each issue names its field)."
    ),
    InvalidIdempotencyKey: ErrorDoc(422, ValidationErrorBody, "The Idempotency-Key is not 1-128 printable."),
    InvalidHeader: ErrorDoc(
        422, ValidationErrorBody, "A header value cannot be read (the message says why)."
    ),
    InvalidWebhook: ErrorDoc(422, ValidationErrorBody, "webhook_url or webhook_events is refused."),
    ExportError: ErrorDoc(422, ValidationErrorBody, "The export options do not fit these scenes."),
    InvalidReferenceImage: ErrorDoc(422, ValidationErrorBody, "The reference image cannot be used."),
    ReferenceImageTooLarge: ErrorDoc(413, ErrorBody, "The reference image is over its size limit."),
    UnsupportedUploadType: ErrorDoc(415, ErrorBody, "The upload's Content-Type is not an image type taken."),
    QuotaExceeded: ErrorDoc(429, QuotaExceededBody, "A per-user quota refused it; retry after Retry-After."),
    Overloaded: ErrorDoc(503, OverloadedBody, "The service is full; retry after Retry-After."),
    BackPressureError: ErrorDoc(503, OverloadedBody, "A downstream queue is full; retry after Retry-After."),
    StorageError: ErrorDoc(503, ErrorBody, "The image/trace store is unreachable; retry later."),
}
# Answered at the edge, before a route runs (no typed error is raised).
UNPARSABLE_BODY = ErrorDoc(400, ErrorBody, "The body could not be parsed (invalid UTF-8, JSON too deep).")
BODY_TOO_LARGE = ErrorDoc(413, ErrorBody, "The declared body is over the size limit (refused unread).")

ErrorSource = type[Exception] | ErrorDoc
_SCHEMAS = "#/components/schemas/"


def error_responses(*sources: ErrorSource) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the typed errors (or edge ``ErrorDoc``) it can answer with.

    One entry per status: the JSON model (a union when causes differ), every cause, and the
    headers (WWW-Authenticate on 401, Retry-After where the body has ``retry_after_s``). The
    statuses any route of its shape answers (401, 400, 413, 422) are added by ``document_errors``.
    """
    by_status: dict[int, list[ErrorDoc]] = {}
    for source in sources:
        doc = source if isinstance(source, ErrorDoc) else ERROR_DOCS[source]
        by_status.setdefault(doc.status, []).append(doc)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, docs in sorted(by_status.items()):
        models = list(dict.fromkeys(doc.model for doc in docs))
        response: dict[str, Any] = {
            "model": models[0] if len(models) == 1 else Union[tuple(models)],  # noqa: UP007
            "description": _describe(docs),
        }
        if headers := _headers(status, models):
            response["headers"] = headers
        responses[status] = response
    return responses


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with what the edge answers on any route, by the operation's shape: 413 everywhere,
    400 where there is a JSON body, 401 where a bearer token is required, 404 where the path names a
    generation, 422 where there are parameters or a body, each with its JSON model (FastAPI's own
    422 model becomes ``ValidationErrorBody``).

    Routes added later need nothing for these; ``error_responses`` documents their own errors.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, ValidationErrorBody):
        _add_schema(schemas, model)
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            stock_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if stock_422.get("schema") == {"$ref": f"{_SCHEMAS}HTTPValidationError"}:
                del responses["422"]  # FastAPI's; re-added below as ValidationErrorBody
            edge = [BODY_TOO_LARGE]
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                edge.append(UNPARSABLE_BODY)  # only a JSON body is parsed before the route runs
            if operation.get("security"):
                edge.append(ERROR_DOCS[AuthError])
            if any(
                p.get("in") == "path" and p.get("name") == "generation_id"
                for p in operation.get("parameters", [])
            ):
                edge.append(ERROR_DOCS[GenerationNotFound])  # every route on a generation checks its owner
            if operation.get("parameters") or "requestBody" in operation:
                edge.append(ERROR_DOCS[RequestValidationError])
            for doc in edge:
                _document(responses, doc)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f'"{_SCHEMAS}{unused}"' not in json.dumps(spec):
            del schemas[unused]
    return spec


def _describe(docs: list[ErrorDoc]) -> str:
    return " ".join(dict.fromkeys(doc.description for doc in docs))


def _headers(status: int, models: list[type[BaseModel]]) -> dict[str, Any]:
    """The documented headers of an error answer (required when every cause sends them)."""
    headers: dict[str, Any] = {}
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": "Always 'Bearer'.",
            "required": True,
            "schema": {"type": "string"},
        }
    with_retry = ["retry_after_s" in model.model_fields for model in models]
    if any(with_retry):
        headers["Retry-After"] = {
            "description": "Whole seconds to wait before retrying (as retry_after_s).",
            "required": all(with_retry),
            "schema": {"type": "integer", "minimum": 1},
        }
    return headers


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    """Put ``model`` (and the models it nests) into the components, unless FastAPI already did."""
    document = model.model_json_schema(ref_template=_SCHEMAS + "{model}", mode="serialization")
    for name, nested in document.pop("$defs", {}).items():
        schemas.setdefault(name, nested)
    schemas.setdefault(model.__name__, document)


def _document(responses: dict[str, Any], doc: ErrorDoc) -> None:
    """Add ``doc`` to the operation's ``responses`` (its cause and model join an existing entry)."""
    ref = {"$ref": _SCHEMAS + doc.model.__name__}
    existing = responses.get(str(doc.status))
    if existing is None:
        responses[str(doc.status)] = {
            "description": doc.description,
            "content": {"application/json": {"schema": ref}},
            **({"headers": headers} if (headers := _headers(doc.status, [doc.model])) else {}),
        }
        return
    if doc.description not in existing.get("description", ""):
        existing["description"] = f"{existing.get('description', '')} {doc.description}".strip()
    media = existing.setdefault("content", {}).setdefault("application/json", {})
    schema = media.get("schema")
    if schema is None:
        media["schema"] = ref
    elif schema != ref and ref not in schema.get("anyOf", []):
        media["schema"] = {"anyOf": [*schema.get("anyOf", [schema]), ref]}
