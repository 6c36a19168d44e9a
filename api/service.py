"""The serving logic of the ingress: ``IngressService``, plain Python (no FastAPI, no Ray).

Routes (``api/routers``) and the Python-handle methods of the ``Ingress`` deployment both call it;
it raises typed errors (``api.errors``, ``GenerationNotFound``, ``QuotaExceeded`` ...) that the
HTTP edge maps to statuses and handle callers receive as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from ray.serve.handle import DeploymentHandle
from scenechain.protocol import (
    FINISHED_STATUSES,
    GenerateAccepted,
    GenerateRequest,
    GenerationPage,
    GenerationStatus,
    GenerationSummary,
    Progress,
    SceneTrace,
    UploadedImage,
)

from api import exports
from api.auth import JwtSettings
from api.errors import (
    ArtifactNotFound,
    ExportNotReady,
    IdempotencyConflict,
    InvalidIdempotencyKey,
    Overloaded,
)
from api.events import parse_last_event_id, stream_events
from api.images import normalise_image, resolve_reference
from api.protocol import IDEMPOTENCY_KEY_RE
from api.quotas import QuotaExceeded, QuotaSettings, check_quotas, window_start
from director.eta import estimate_eta_s, stage_rates
from director.events import enhancement_trace
from director.records import cancel_reason, choose_seed, deadline_at
from director.webhooks import WebhookSettings, check_webhook_request
from store.db import Database, GenerationRecord, utcnow
from store.events import EventStore, SqlEventStore
from store.storage import Storage
from store.webhooks import DeliveryRecord, WebhookSecretRecord, WebhookStore

logger = logging.getLogger(__name__)

_TRACE_TEXT_SUFFIXES = (".txt", ".json")


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
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings, description="Webhook URL policy (SSRF) checked at submission."
    )
    director_capacity: int = Field(
        default=4, ge=1, description="Generations the Director replicas run at once (queue ETAs)."
    )
    max_wait_s: int = Field(
        default=60,
        ge=1,
        le=60,
        description="Longest 'Prefer: wait=N' honoured; a longer N waits this long (Preference-Applied says so).",
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


class IngressService:
    """Everything behind the routes and the handle methods."""

    def __init__(
        self,
        settings: IngressSettings,
        director: DirectorClient,
        *,
        db: Database | None = None,
        event_store: EventStore | None = None,
    ) -> None:
        self.settings = settings
        self.director = director
        self.db = db or Database(settings.database_url)
        self.storage = Storage(settings.output_dir)
        # The events log the Director appends to: by default the events table of the same database.
        self.event_store: EventStore = event_store or SqlEventStore(self.db.engine)
        self.webhooks = WebhookStore(self.db.engine)
        self._admission = asyncio.Lock()

    # -- generations ---------------------------------------------------------------------------

    async def submit(
        self,
        request: GenerateRequest | dict[str, Any],
        user: str,
        idempotency_key: str | None = None,
        *,
        cancel_after_s: float | None = None,
    ) -> GenerateAccepted:
        """Record a queued generation and hand it to the Director; returns at once.

        With ``idempotency_key``, a retry of the same request returns the generation the first
        attempt created (nothing new is queued); the same key with another body is a conflict.
        ``cancel_after_s`` (the Cancel-After header) sets the deadline; with ``deadline_s`` in the
        body too, the earlier one holds.
        """
        if not isinstance(request, GenerateRequest):
            request = GenerateRequest.model_validate(request)
        if cancel_after_s is not None:
            deadline_s = (
                cancel_after_s if request.deadline_s is None else min(request.deadline_s, cancel_after_s)
            )
            request = request.model_copy(update={"deadline_s": deadline_s})
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise InvalidIdempotencyKey(
                "Idempotency-Key must be 1-128 printable ASCII characters without spaces"
            )
        # SSRF: the webhook URL's every address is checked before anything is recorded (422).
        webhook_events = await check_webhook_request(
            request.webhook_url, request.webhook_events, self.settings.webhooks
        )
        # A product reference image is checked (4xx) before anything is stored; the row keeps its id.
        resolved = await asyncio.to_thread(resolve_reference, request, user, self.storage)
        request, reference_png = resolved
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
            if reference_png is not None:  # stored before the row exists: the Director never misses it
                await asyncio.to_thread(self.storage.write_reference_image, generation_id, reference_png)
            await asyncio.to_thread(
                self.db.create_generation,
                generation_id=generation_id,
                user=user,
                request=request.model_dump(mode="json"),
                seed=seed,
                scenes_total=request.num_scenes,
                idempotency_key=idempotency_key,
            )
            if request.webhook_url is not None and webhook_events is not None:
                await asyncio.to_thread(
                    self._subscribe_webhook, generation_id, user, request.webhook_url, webhook_events
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

    def _subscribe_webhook(self, generation_id: str, user: str, url: str, events: list[str]) -> None:
        """Record the generation's webhook (the Director's dispatcher delivers it) and the user's secret."""
        self.webhooks.get_or_create_secret(user)
        self.webhooks.subscribe(generation_id, user, url, events)

    async def webhook_secret(self, user: str) -> WebhookSecretRecord:
        """The user's webhook signing secret (created on first fetch)."""
        return await asyncio.to_thread(self.webhooks.get_or_create_secret, user)

    async def rotate_webhook_secret(self, user: str) -> WebhookSecretRecord:
        """A new signing secret for the user; every delivery signed from now on uses it."""
        record = await asyncio.to_thread(self.webhooks.rotate_secret, user)
        logger.info("webhook secret of %s rotated", user)
        return record

    async def webhook_deliveries(self, generation_id: str, user: str) -> list[DeliveryRecord]:
        """The webhook deliveries of one of ``user``'s generations (GenerationNotFound otherwise)."""
        await self._owned(generation_id, user)
        return await asyncio.to_thread(self.webhooks.deliveries_for, generation_id)

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

    async def _owned(self, generation_id: str, user: str) -> GenerationRecord:
        """The row of one of ``user``'s generations; GenerationNotFound for another user's id."""
        return await asyncio.to_thread(self.db.get, generation_id, user=user)

    async def status(self, generation_id: str, user: str) -> GenerationStatus:
        """The status document; GenerationNotFound for another user's or an unknown id.

        While unfinished it carries ``queue_position`` (queued only) and an ``eta_s`` estimate.
        """
        record = await self._owned(generation_id, user)
        document = status_document(record)
        if record.status in FINISHED_STATUSES:
            return document
        position = await asyncio.to_thread(self.db.queue_position, record.id)
        recent = await asyncio.to_thread(self.db.recent_completed, advanced=record.advanced)
        running = await asyncio.to_thread(self.db.count_running) if position is not None else 0
        eta = estimate_eta_s(
            record,
            stage_rates(recent),
            queue_position=position,
            running=running,
            capacity=self.settings.director_capacity,
        )
        return document.model_copy(update={"queue_position": position, "eta_s": eta})

    async def wait(
        self, generation_id: str, user: str, timeout_s: float = 900.0, poll_s: float = 0.5
    ) -> GenerationStatus:
        """Poll until the generation is finished (or ``timeout_s`` passes: TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            # The row alone: a finished document carries no queue position or ETA to compute.
            record = await self._owned(generation_id, user)
            if record.status in FINISHED_STATUSES:
                return status_document(record)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"generation {generation_id} still {record.status} after {timeout_s}s")
            await asyncio.sleep(min(poll_s, left))

    async def submit_and_wait(
        self,
        request: GenerateRequest | dict[str, Any],
        user: str,
        idempotency_key: str | None = None,
        *,
        wait_s: float,
        cancel_after_s: float | None = None,
    ) -> GenerateAccepted | GenerationStatus:
        """``Prefer: wait=N``: the finished status when the job ends within ``wait_s``, else the 202 answer.

        The job is the same either way: waiting only decides what this answer carries.
        """
        accepted = await self.submit(request, user, idempotency_key, cancel_after_s=cancel_after_s)
        try:
            return await self.wait(
                accepted.id, user, timeout_s=min(wait_s, self.settings.max_wait_s), poll_s=0.25
            )
        except TimeoutError:
            return accepted

    async def generate(
        self, request: GenerateRequest | dict[str, Any], user: str, timeout_s: float = 900.0
    ) -> GenerationStatus:
        """Submit and await the finished status (the Python-handle convenience)."""
        accepted = await self.submit(request, user)
        return await self.wait(accepted.id, user, timeout_s=timeout_s)

    async def cancel(self, generation_id: str, user: str) -> GenerationStatus:
        """Cancel an unfinished generation of ``user``; returns the resulting status."""
        await self._owned(generation_id, user)
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

    # -- live events ---------------------------------------------------------------------------

    async def event_stream(
        self, generation_id: str, user: str, last_event_id: str | None = None, max_duration_s: float = 300.0
    ) -> AsyncIterator[str]:
        """SSE text of a generation's events after ``last_event_id`` (an invalid one replays all).

        Ownership is checked before the stream starts (GenerationNotFound); the stream ends at
        the ``done`` event or after ``max_duration_s`` (the client resumes with Last-Event-ID).
        """
        await self._owned(generation_id, user)

        async def snapshot() -> GenerationRecord:
            return await self._owned(generation_id, user)

        return stream_events(
            self.event_store,
            generation_id,
            snapshot,
            after_seq=parse_last_event_id(last_event_id),
            max_duration_s=max_duration_s,
        )

    # -- uploads -------------------------------------------------------------------------------

    async def upload_image(self, data: bytes, user: str) -> UploadedImage:
        """Check, normalise and store a product image of ``user`` (InvalidReferenceImage: 4xx)."""
        image = await asyncio.to_thread(normalise_image, data, "the uploaded file")
        await asyncio.to_thread(self.storage.write_upload, user, image.id, image.png)
        logger.info("upload %s stored for %s (%dx%d)", image.id, user, image.width, image.height)
        return image.uploaded()

    # -- images and traces ---------------------------------------------------------------------

    async def scene_image(self, generation_id: str, scene: int, user: str) -> bytes:
        """PNG of a scene's kept image (ArtifactNotFound before it exists)."""
        await self._owned(generation_id, user)
        try:
            return await asyncio.to_thread(self.storage.read_scene_image, generation_id, scene)
        except FileNotFoundError:
            raise ArtifactNotFound(f"scene {scene} has no image (yet)") from None

    async def variation_image(self, generation_id: str, scene: int, k: int, user: str) -> bytes:
        """PNG of variation k (1-based) of a scene (ArtifactNotFound when there is none)."""
        await self._owned(generation_id, user)
        try:
            return await asyncio.to_thread(self.storage.read_variation, generation_id, scene, k)
        except FileNotFoundError:
            raise ArtifactNotFound(f"scene {scene} has no variation {k}") from None

    async def scene_trace(self, generation_id: str, scene: int, user: str) -> SceneTrace:
        """The enhancement trace of a scene (ArtifactNotFound before it has one)."""
        await self._owned(generation_id, user)
        names, files = await asyncio.to_thread(self._read_trace_files, generation_id, scene)
        if not names:
            raise ArtifactNotFound(f"scene {scene} has no trace (yet)")
        document = enhancement_trace(files).model_copy(
            update={"variations": [n for n in names if n.startswith("image_") and n.endswith(".png")]}
        )
        return SceneTrace(generation_id=generation_id, scene=scene, files=files, **dict(document))

    def _read_trace_files(self, generation_id: str, scene: int) -> tuple[list[str], dict[str, str]]:
        """Every file name of a scene's trace dir, and the text/JSON files by name (StorageError)."""
        names = self.storage.list_trace_files(generation_id, scene)
        files = {
            name: self.storage.read_trace_file(generation_id, scene, name).decode("utf-8", "replace")
            for name in names
            if name.endswith(_TRACE_TEXT_SUFFIXES)
        }
        return names, files

    # -- exports -------------------------------------------------------------------------------

    async def contact_sheet(self, generation_id: str, user: str, columns: int | None = None) -> bytes:
        """A storyboard contact sheet PNG (ExportNotReady before a scene is done, ExportError)."""
        status = await self.status(generation_id, user)
        pngs = await self._scene_pngs(status)
        return await asyncio.to_thread(
            exports.contact_sheet, exports.sheet_scenes(status, pngs), title=status.prompt, columns=columns
        )

    async def animatic(
        self,
        generation_id: str,
        user: str,
        seconds_per_scene: float = 2.0,
        crossfade: float = 0.5,
        fps: int = 12,
    ) -> bytes:
        """An animatic MP4, scenes cross-faded in order (ExportNotReady, ExportError)."""
        status = await self.status(generation_id, user)
        pngs = await self._scene_pngs(status)
        return await asyncio.to_thread(
            exports.animatic_mp4, [pngs[n] for n in sorted(pngs)], seconds_per_scene, crossfade, fps
        )

    async def _scene_pngs(self, status: GenerationStatus) -> dict[int, bytes]:
        """The kept images of the finished scenes by scene number (ExportNotReady when none)."""
        pngs = {}
        for scene in status.scenes:
            try:
                pngs[scene.index] = await asyncio.to_thread(
                    self.storage.read_scene_image, status.id, scene.index
                )
            except FileNotFoundError:
                logger.warning("[generation %s] scene %d image missing", status.id, scene.index)
        if not pngs:
            raise ExportNotReady(f"generation {status.id} has no finished scene yet")
        return pngs


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
            "deadline_at": deadline_at(record.created_at, record.request),
            "cancel_reason": cancel_reason(record.status, record.stage),
            "reference_image_used": any(scene.reference_image for scene in record.scenes),
        }
    )
