"""The ingress: HTTP routes (FastAPI) and the Python-handle methods; no models here.

``IngressService`` holds the logic (auth, DB rows, status documents, image reads) and is plain
Python; ``create_api(service)`` builds the FastAPI app on it; the ``Ingress`` deployment binds both
to Ray Serve (the app is built per replica through ``__serve_build_asgi_app__``).

Python handle (same pydantic request model as HTTP)::

    handle = serve.get_app_handle("scenechain")
    accepted = await handle.submit.remote(GenerateRequest(prompt="..."), user="alice")
    status = await handle.wait.remote(accepted.id, user="alice", timeout_s=600)
    # or in one call:
    status = await handle.generate.remote(GenerateRequest(prompt="..."), user="alice")
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from scenechain.protocol import (
    FINISHED_STATUSES,
    GenerateAccepted,
    GenerateRequest,
    GenerationPage,
    GenerationStatus,
    GenerationSummary,
    Health,
    OverloadedBody,
    Progress,
    QuotaExceededBody,
    range_message,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import AuthError, JwtSettings, user_from_authorization
from api.quotas import QuotaExceeded, QuotaSettings, check_quotas, window_start
from api.ui_routes import install_ui
from director.records import choose_seed
from store import metrics
from store.db import Database, GenerationNotFound, GenerationRecord, utcnow
from store.storage import Storage

logger = logging.getLogger(__name__)

PNG = "image/png"
# A valid generate body is at most ~75 KB even with every character JSON-escaped; refuse more unread.
MAX_BODY_BYTES = 128 * 1024
ID_RULE = "generation ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"


class IngressSettings(BaseModel):
    """What the Ingress deployment receives (built by ``AppArgs.ingress_settings``)."""

    model_config = ConfigDict(extra="forbid")

    app_name: str = Field(default="scenechain", description="Serve application name (in /healthz).")
    profile: str = Field(default="tiny", description="Model profile name (in /healthz).")
    database_url: str = Field(description="SQLAlchemy URL of the app's database.")
    output_dir: str = Field(description="Image/trace store: absolute local path or fsspec URL.")
    jwt: JwtSettings = Field(default_factory=JwtSettings, description="Bearer-token verification.")
    quotas: QuotaSettings = Field(default_factory=QuotaSettings, description="Per-user limits (429).")
    max_queued_generations: int | None = Field(
        default=None, ge=1, description="Unfinished generations above which POST /api/generate answers 503."
    )
    retry_after_s: int = Field(
        default=10, ge=1, description="Retry-After of 503 and concurrency-429 answers."
    )


class DirectorClient(Protocol):
    """What the ingress needs from the Director."""

    async def submit(self, generation_id: str) -> None: ...

    async def cancel(self, generation_id: str) -> bool: ...


class HandleDirectorClient:
    """``DirectorClient`` over a Serve deployment handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def submit(self, generation_id: str) -> None:
        await self.handle.submit.remote(generation_id)

    async def cancel(self, generation_id: str) -> bool:
        return bool(await self.handle.cancel.remote(generation_id))


class Overloaded(RuntimeError):
    """The service is at capacity; the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


class IdempotencyConflict(ValueError):
    """An Idempotency-Key reused with a different request body (HTTP 409)."""


IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


class IngressService:
    """Everything behind the routes and the handle methods."""

    def __init__(
        self, settings: IngressSettings, director: DirectorClient, *, db: Database | None = None
    ) -> None:
        self.settings = settings
        self.director = director
        self.db = db or Database(settings.database_url)
        self.storage = Storage(settings.output_dir)
        self._admission = asyncio.Lock()

    # -- generations ---------------------------------------------------------------------------

    async def submit(
        self, request: GenerateRequest | dict[str, Any], user: str, idempotency_key: str | None = None
    ) -> GenerateAccepted:
        """Record a queued generation and hand it to the Director; returns at once.

        With ``idempotency_key``, a retry of the same request returns the generation the first
        attempt created (nothing new is queued); the same key with another body is a conflict.
        """
        if not isinstance(request, GenerateRequest):
            request = GenerateRequest.model_validate(request)
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise ValueError("Idempotency-Key must be 1-128 printable ASCII characters without spaces")
        generation_id = uuid.uuid4().hex
        seed = choose_seed(request.seed)
        # Check and insert under one lock, or a burst passes the check before any row exists
        # (exact per replica; across Ingress replicas the queue may overshoot by replicas - 1).
        async with self._admission:
            if idempotency_key is not None:
                earlier = await asyncio.to_thread(self.db.find_by_idempotency_key, user, idempotency_key)
                if earlier is not None:
                    if earlier.request != request.model_dump(mode="json"):
                        raise IdempotencyConflict(
                            "Idempotency-Key was already used with a different request body; "
                            "use a new key for a new request"
                        )
                    return GenerateAccepted(
                        id=earlier.id, status=earlier.status, status_url=status_url(earlier.id)
                    )
            # Per-user quotas (429) before the global queue (503): one user's burst is theirs to wait out.
            await self._check_quotas(user)
            limit = self.settings.max_queued_generations
            if limit is not None and await asyncio.to_thread(self.db.count_unfinished) >= limit:
                raise Overloaded(
                    f"{limit} generations are already queued or running; retry later",
                    self.settings.retry_after_s,
                    "queue_full",
                )
            await asyncio.to_thread(
                self.db.create_generation,
                generation_id=generation_id,
                user=user,
                request=request.model_dump(mode="json"),
                seed=seed,
                scenes_total=request.num_scenes,
                idempotency_key=idempotency_key,
            )
        logger.info(
            "[generation %s] queued for %s (advanced=%s)",
            generation_id,
            user,
            request.use_advanced_image_generation,
            extra={"generation_id": generation_id},
        )
        try:
            await self.director.submit(generation_id)
        except Exception:
            # Still queued in the DB: the Director's recovery pass picks it up.
            logger.exception("[generation %s] director unreachable; left queued", generation_id)
        return GenerateAccepted(id=generation_id, status="queued", status_url=status_url(generation_id))

    async def _check_quotas(self, user: str) -> None:
        """Raise ``QuotaExceeded`` when ``user`` is over a per-user limit (counted in the DB)."""
        quotas = self.settings.quotas
        if quotas.max_active_per_user is None and quotas.rate_limit_per_user is None:
            return
        now = utcnow()
        active = recent = None
        if quotas.max_active_per_user is not None:
            active = await asyncio.to_thread(self.db.count_unfinished_for_user, user)
        if quotas.rate_limit_per_user is not None:
            recent = await asyncio.to_thread(self.db.submitted_since, user, window_start(quotas, now))
        try:
            check_quotas(
                quotas,
                active=active or 0,
                recent=recent or [],
                now=now,
                concurrent_retry_after_s=self.settings.retry_after_s,
            )
        except QuotaExceeded as exc:
            logger.info("submission of %s refused (%s quota): %s", user, exc.reason, exc)
            raise

    async def status(self, generation_id: str, user: str) -> GenerationStatus:
        """The status document; GenerationNotFound for another user's or an unknown id."""
        record = await asyncio.to_thread(self.db.get, generation_id, user=user)
        return status_document(record)

    async def wait(
        self, generation_id: str, user: str, timeout_s: float = 900.0, poll_s: float = 0.5
    ) -> GenerationStatus:
        """Poll until the generation is finished (or ``timeout_s`` passes: TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            document = await self.status(generation_id, user)
            if document.status in FINISHED_STATUSES:
                return document
            if time.monotonic() > deadline:
                raise TimeoutError(f"generation {generation_id} still {document.status} after {timeout_s}s")
            await asyncio.sleep(poll_s)

    async def generate(
        self, request: GenerateRequest | dict[str, Any], user: str, timeout_s: float = 900.0
    ) -> GenerationStatus:
        """Submit and await the finished status (the Python-handle convenience)."""
        accepted = await self.submit(request, user)
        return await self.wait(accepted.id, user, timeout_s=timeout_s)

    async def cancel(self, generation_id: str, user: str) -> GenerationStatus:
        """Cancel an unfinished generation of ``user``; returns the resulting status."""
        await asyncio.to_thread(self.db.get, generation_id, user=user)
        await self.director.cancel(generation_id)
        return await self.status(generation_id, user)

    async def list_generations(self, user: str, limit: int = 20, offset: int = 0) -> GenerationPage:
        """The caller's generations, newest first."""
        records, total = await asyncio.to_thread(self.db.list_for_user, user, limit=limit, offset=offset)
        items = [
            GenerationSummary(
                id=r.id,
                status=r.status,  # type: ignore[arg-type]
                prompt=r.prompt,
                advanced_image_generation_used=r.advanced,
                scenes_done=r.scenes_done,
                scenes_total=r.scenes_total,
                created_at=r.created_at,
                status_url=status_url(r.id),
            )
            for r in records
        ]
        return GenerationPage(items=items, total=total, limit=limit, offset=offset)

    async def scene_image(self, generation_id: str, scene: int, user: str) -> bytes:
        """PNG of a scene's kept image (FileNotFoundError before it exists)."""
        await asyncio.to_thread(self.db.get, generation_id, user=user)
        return await asyncio.to_thread(self.storage.read_scene_image, generation_id, scene)

    async def variation_image(self, generation_id: str, scene: int, k: int, user: str) -> bytes:
        """PNG of variation k (1-based) of a scene."""
        await asyncio.to_thread(self.db.get, generation_id, user=user)
        return await asyncio.to_thread(self.storage.read_variation, generation_id, scene, k)


def status_url(generation_id: str) -> str:
    """API path of a generation's status."""
    return f"/api/status/{generation_id}"


def status_document(record: GenerationRecord) -> GenerationStatus:
    """The API status document of a DB row."""
    return GenerationStatus.model_validate(
        {
            "id": record.id,
            "status": record.status,
            "progress": Progress(
                scenes_done=record.scenes_done, scenes_total=record.scenes_total, stage=record.stage
            ),
            "prompt": record.prompt,
            "seed": record.seed,
            "advanced_image_generation_used": record.advanced,
            "storyboard_plan": record.storyboard_plan,
            "image_quality_scores": record.image_quality_scores,
            "scenes": record.scenes,
            "warnings": record.warnings,
            "error": record.error,
            "timings": record.timings,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
    )


# -- HTTP ----------------------------------------------------------------------------------------


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
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


async def current_user(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller, from the Bearer JWT (401 otherwise)."""
    service: IngressService = request.app.state.service
    try:
        return user_from_authorization(service.settings.jwt, authorization)
    except AuthError as exc:
        raise HTTPException(401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


# Module-level aliases: FastAPI resolves (stringified) annotations in the module's namespace.
User = Annotated[str, Depends(current_user)]
GenerationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Generation id.")]
SceneNumber = Annotated[int, Path(ge=1, le=64, description="1-based scene number.")]
VariationNumber = Annotated[int, Path(ge=1, le=8, description="1-based variation number.")]
PageLimit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
# Bounded: SQLite/PostgreSQL OFFSET is a signed 64-bit integer (2**63 was a 500).
PageOffset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Rows to skip.")]


def create_api(service: IngressService) -> FastAPI:
    """The FastAPI app (routes only) on ``service``."""
    api = FastAPI(
        title="scenechain",
        description="Turns an ad brief into a chained storyboard of scene images.",
        version="0.1.0",
    )
    api.state.service = service
    default_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = _document_one_message_422(default_openapi())
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]

    @api.middleware("http")
    async def _count_requests(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = _too_large(request) or await call_next(request)
        route = request.scope.get("route")  # the template, e.g. /api/status/{generation_id}
        path = getattr(route, "path", "unmatched")
        metrics.record_request(path, request.method, response.status_code, time.perf_counter() - started)
        return response

    def _overloaded(message: str, retry_after_s: float, reason: str) -> JSONResponse:
        metrics.record_rejection(reason)
        seconds = max(1, int(-(-retry_after_s // 1)))  # whole seconds, rounded up
        return JSONResponse(
            status_code=503,
            content={"detail": message, "error": "overloaded", "retry_after_s": seconds},
            headers={"Retry-After": str(seconds)},
        )

    @api.exception_handler(Overloaded)
    async def _on_overloaded(_request: Request, exc: Overloaded) -> JSONResponse:
        return _overloaded(str(exc), exc.retry_after_s, exc.reason)

    @api.exception_handler(QuotaExceeded)
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

    @api.exception_handler(BackPressureError)
    async def _on_backpressure(_request: Request, exc: BackPressureError) -> JSONResponse:
        # A downstream deployment's queue is full (a handle call was refused): same answer.
        retry = exc.retry_after_s if exc.retry_after_s is not None else service.settings.retry_after_s
        return _overloaded(f"service busy ({exc.message}); retry later", retry, "deployment_backpressure")

    @api.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's stock details ("Not Found", ...) do not say what to fix; these do.
        if exc.status_code == 404 and exc.detail == "Not Found":
            hint = f"; {ID_RULE}" if request.url.path.startswith("/api/") else ""
            detail = f"no route matches {request.method} {request.url.path}{hint}; the routes are at /docs"
            exc = StarletteHTTPException(404, detail=detail, headers=exc.headers)
        elif exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            exc = StarletteHTTPException(
                400,
                detail="request body could not be parsed (invalid UTF-8 or JSON nested too deep); "
                "send a flat JSON object encoded as UTF-8",
            )
        return await http_exception_handler(request, exc)

    @api.exception_handler(RequestValidationError)
    async def _on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _validation_errors(exc)})

    def not_found(generation_id: str) -> HTTPException:
        return HTTPException(404, detail=f"generation {generation_id} not found")

    @api.post(
        "/api/generate",
        status_code=202,
        response_model=GenerateAccepted,
        tags=["generations"],
        responses={
            429: {"model": QuotaExceededBody, "description": "A per-user quota; retry after Retry-After."},
            503: {"model": OverloadedBody, "description": "The service is full; retry after Retry-After."},
        },
    )
    async def generate(
        body: GenerateRequest,
        user: User,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                description="Retry-safe submission: the same key and body return the same generation.",
                json_schema_extra={"pattern": IDEMPOTENCY_KEY_RE.pattern},
            ),
        ] = None,
    ) -> GenerateAccepted:
        """Submit a generation; answers 202 at once with the id and where to poll."""
        try:
            return await service.submit(body, user, idempotency_key)
        except IdempotencyConflict as exc:
            raise HTTPException(409, detail=str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from exc

    @api.get("/api/status/{generation_id}", response_model=GenerationStatus, tags=["generations"])
    async def status(generation_id: GenerationId, user: User) -> GenerationStatus:
        """The status document of one of the caller's generations."""
        try:
            return await service.status(generation_id, user)
        except GenerationNotFound:
            raise not_found(generation_id) from None

    @api.get("/api/generations", response_model=GenerationPage, tags=["generations"])
    async def list_generations(
        user: User,
        limit: PageLimit = 20,
        offset: PageOffset = 0,
    ) -> GenerationPage:
        """The caller's generations, newest first."""
        return await service.list_generations(user, limit=limit, offset=offset)

    @api.post(
        "/api/generations/{generation_id}/cancel", response_model=GenerationStatus, tags=["generations"]
    )
    async def cancel(generation_id: GenerationId, user: User) -> GenerationStatus:
        """Cancel one of the caller's unfinished generations."""
        try:
            return await service.cancel(generation_id, user)
        except GenerationNotFound:
            raise not_found(generation_id) from None

    @api.get(
        "/api/generations/{generation_id}/scenes/{scene}/image",
        response_class=Response,
        responses={200: {"content": {PNG: {}}}},
        tags=["images"],
    )
    async def scene_image(generation_id: GenerationId, scene: SceneNumber, user: User) -> Response:
        """PNG of a scene's kept image."""
        try:
            return Response(await service.scene_image(generation_id, scene, user), media_type=PNG)
        except GenerationNotFound:
            raise not_found(generation_id) from None
        except FileNotFoundError:
            raise HTTPException(404, detail=f"scene {scene} has no image (yet)") from None

    @api.get(
        "/api/generations/{generation_id}/scenes/{scene}/variations/{k}",
        response_class=Response,
        responses={200: {"content": {PNG: {}}}},
        tags=["images"],
    )
    async def variation_image(
        generation_id: GenerationId,
        scene: SceneNumber,
        k: VariationNumber,
        user: User,
    ) -> Response:
        """PNG of variation k of a scene (image_{k}.png of its trace)."""
        try:
            return Response(await service.variation_image(generation_id, scene, k, user), media_type=PNG)
        except GenerationNotFound:
            raise not_found(generation_id) from None
        except FileNotFoundError:
            raise HTTPException(404, detail=f"scene {scene} has no variation {k}") from None

    @api.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        """Liveness (no auth)."""
        return Health(status="ok", app=service.settings.app_name, profile=service.settings.profile)

    # The gallery (/ui), live events (SSE), per-scene traces and storyboard exports.
    install_ui(api, service)
    return api


def _document_one_message_422(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with a 422 ``detail`` that may also be one string (route-level checks answer so)."""
    error = spec.get("components", {}).get("schemas", {}).get("HTTPValidationError")
    if error is not None:
        listed = {key: value for key, value in error["properties"]["detail"].items() if key != "title"}
        error["properties"]["detail"] = {
            "anyOf": [listed, {"type": "string"}],
            "title": "Detail",
            "description": "The issues, each naming its field; or one message (e.g. a bad Idempotency-Key).",
        }
    return spec


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
