"""What users touch, server side: the web gallery, live events (SSE), scene traces and exports.

``install_ui(api, service)`` adds these routes to the ingress's FastAPI app (one call at the end of
``create_api``); everything goes through ``IngressService`` (its ``db`` and ``storage``), so the
routes work on any ingress replica:

- ``GET /`` and ``GET /ui`` redirect to ``/ui/``; ``GET /ui/{file}`` serves ``serve/static``;
- ``GET /api/generations/{id}/events`` — Server-Sent Events until ``done``; ``Last-Event-ID``
  (header, or ``?last_event_id=``) resumes after that event;
- ``GET /api/generations/{id}/scenes/{n}/trace`` — the enhancement trace as JSON;
- ``GET /api/generations/{id}/export/contact-sheet.png`` and ``.../export/animatic.mp4``.
"""

import asyncio
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from api import exports
from api.auth import AuthError, user_from_authorization
from api.events import parse_last_event_id, stream_events
from director.events import enhancement_trace
from store.db import GenerationNotFound
from store.events import EventStore, SqlEventStore
from store.storage import StorageError

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(html|js|css|png|svg|ico)$")
_TEXT_SUFFIXES = (".txt", ".json")
# An event seq: ASCII digits that fit a 64-bit column ("²".isdigit() is True; int() of it raises).
_EVENT_SEQ = re.compile(r"^\s*[0-9]{1,18}\s*$")
PNG = "image/png"
MP4 = "video/mp4"


class TraceIteration(BaseModel):
    """One round of the two-agent enhancer."""

    iteration: int = Field(description="1-based iteration number.")
    rewrite: str | None = Field(default=None, description="The Cinematographer's rewrite (agent 1).")
    scores: dict[str, float] = Field(
        default_factory=dict, description="The critic's criterion scores (agent 2)."
    )
    overall: float | None = Field(default=None, description="The critic's overall score, 0-100.")
    feedback: str | None = Field(default=None, description="The critic's feedback.")
    negative_prompt: str | None = Field(default=None, description="The critic's negative prompt.")
    approved: bool = Field(default=False, description="Whether this rewrite reached the approve threshold.")
    critic_text: str | None = Field(default=None, description="The critic's file, when it was not JSON.")


class SceneTrace(BaseModel):
    """The enhancement trace of one scene (``GET .../scenes/{n}/trace``)."""

    generation_id: str = Field(description="Generation id.")
    scene: int = Field(description="1-based scene number.")
    original_prompt: str | None = Field(description="The planned prompt (00_original_prompt.txt).")
    iterations: list[TraceIteration] = Field(description="Rewrite → critic rounds, in order.")
    final_prompt: str | None = Field(description="The prompt generated with (final_enhanced_prompt.txt).")
    summary: dict[str, Any] | None = Field(description="prompt_trace_summary.json, parsed.")
    quality_scores: dict[str, Any] | None = Field(description="quality_scores.json, parsed.")
    variations: list[str] = Field(description="Variation image files (image_k.png).")
    files: dict[str, str] = Field(description="Every text/JSON trace file by name, verbatim.")


def _event_seq(value: str | None) -> str | None:
    """``value`` when it is a storable seq, else None (a bad Last-Event-ID replays from the start)."""
    return value if value is not None and _EVENT_SEQ.match(value) else None


def _static_file(name: str) -> Path:
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise HTTPException(404, detail=f"no such file: {name}")
    return path


def install_ui(api: FastAPI, service: Any, *, event_store: EventStore | None = None) -> APIRouter:
    """Add the gallery, events, trace and export routes to ``api``; returns the router."""
    router = create_ui_router(service, event_store=event_store)
    api.include_router(router)
    return router


def create_ui_router(service: Any, *, event_store: EventStore | None = None) -> APIRouter:
    """The router on ``service`` (an ``IngressService``: ``settings.jwt``, ``db``, ``storage``, ``status``)."""
    router = APIRouter()
    settings = service.settings.jwt
    stores: dict[str, EventStore] = {}

    def events_store() -> EventStore:
        # Built on first use: creating the table is DB work, not import work.
        if "store" not in stores:
            stores["store"] = event_store or SqlEventStore(service.db.engine)
        return stores["store"]

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        try:
            return user_from_authorization(settings, authorization)
        except AuthError as exc:
            raise HTTPException(401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc

    User = Annotated[str, Depends(current_user)]
    GenerationId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Generation id.")]
    SceneNumber = Annotated[int, PathParam(ge=1, le=64, description="1-based scene number.")]

    def not_found(generation_id: str) -> HTTPException:
        return HTTPException(404, detail=f"generation {generation_id} not found")

    async def owned_status(generation_id: str, user: str) -> Any:
        try:
            return await service.status(generation_id, user)
        except GenerationNotFound:
            raise not_found(generation_id) from None

    # -- gallery -----------------------------------------------------------------------------------

    @router.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url_for("ui_index")), status_code=307)

    @router.get("/ui", include_in_schema=False)
    async def ui_redirect(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url_for("ui_index")), status_code=307)

    @router.get("/ui/", include_in_schema=False, name="ui_index")
    async def ui_index() -> FileResponse:
        return FileResponse(_static_file("index.html"), headers={"Cache-Control": "no-cache"})

    @router.get("/ui/{name}", include_in_schema=False)
    async def ui_file(name: str) -> FileResponse:
        return FileResponse(_static_file(name), headers={"Cache-Control": "no-cache"})

    # -- live events -------------------------------------------------------------------------------

    @router.get(
        "/api/generations/{generation_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
        tags=["generations"],
    )
    async def events(
        generation_id: GenerationId,
        user: User,
        last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        last_event_id: Annotated[
            str | None, Query(description="Resume after this event (as Last-Event-ID).")
        ] = None,
    ) -> StreamingResponse:
        """Server-Sent Events of a generation: stage, enhancer_iteration, variation_scored, best_picked,
        warning, scene_done, error, done (the last). Reconnect with Last-Event-ID to resume."""
        await owned_status(generation_id, user)
        store = events_store()

        async def snapshot() -> Any:
            return await asyncio.to_thread(service.db.get, generation_id, user=user)

        stream = stream_events(
            store,
            generation_id,
            snapshot,
            after_seq=parse_last_event_id(_event_seq(last_event_id_header or last_event_id)),
            max_duration_s=300.0,
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
        )

    # -- trace -------------------------------------------------------------------------------------

    @router.get(
        "/api/generations/{generation_id}/scenes/{scene}/trace", response_model=SceneTrace, tags=["images"]
    )
    async def trace(generation_id: GenerationId, scene: SceneNumber, user: User) -> SceneTrace:
        """The enhancement trace of a scene: original → each Cinematographer rewrite with the
        critic's scores → final prompt, plus the summary and the variations' quality scores."""
        await owned_status(generation_id, user)
        storage = service.storage

        def read_files() -> dict[str, str]:
            files = {}
            for name in storage.list_trace_files(generation_id, scene):
                if name.endswith(_TEXT_SUFFIXES):
                    files[name] = storage.read_trace_file(generation_id, scene, name).decode(
                        "utf-8", "replace"
                    )
            return files

        try:
            names = await asyncio.to_thread(storage.list_trace_files, generation_id, scene)
            files = await asyncio.to_thread(read_files)
        except StorageError as exc:
            raise HTTPException(503, detail=f"trace storage unavailable: {exc}") from exc
        if not names:
            raise HTTPException(404, detail=f"scene {scene} has no trace (yet)")
        document = enhancement_trace(files)
        document["variations"] = [
            name for name in names if name.startswith("image_") and name.endswith(".png")
        ]
        return SceneTrace(generation_id=generation_id, scene=scene, files=files, **document)

    # -- exports -----------------------------------------------------------------------------------

    async def scene_pngs(generation_id: str, status: Any) -> dict[int, bytes]:
        pngs = {}
        for scene in status.scenes:
            try:
                pngs[scene.index] = await asyncio.to_thread(
                    service.storage.read_scene_image, generation_id, scene.index
                )
            except FileNotFoundError:
                logger.warning("[generation %s] scene %d image missing", generation_id, scene.index)
        if not pngs:
            raise HTTPException(409, detail=f"generation {generation_id} has no finished scene yet")
        return pngs

    def attachment(generation_id: str, name: str) -> dict[str, str]:
        return {"Content-Disposition": f'attachment; filename="{generation_id}_{name}"'}

    @router.get(
        "/api/generations/{generation_id}/export/contact-sheet.png",
        response_class=Response,
        responses={200: {"content": {PNG: {}}}},
        tags=["exports"],
    )
    async def contact_sheet(
        generation_id: GenerationId,
        user: User,
        columns: Annotated[
            int | None, Query(ge=1, le=8, description="Scenes per row (default: up to 4).")
        ] = None,
    ) -> Response:
        """A storyboard contact sheet: scenes in order with captions, scores and chain arrows."""
        status = await owned_status(generation_id, user)
        pngs = await scene_pngs(generation_id, status)
        try:
            png = await asyncio.to_thread(
                exports.contact_sheet,
                exports.sheet_scenes(status, pngs),
                title=status.prompt,
                columns=columns,
            )
        except exports.ExportError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        return Response(png, media_type=PNG, headers=attachment(generation_id, "contact_sheet.png"))

    @router.get(
        "/api/generations/{generation_id}/export/animatic.mp4",
        response_class=Response,
        responses={200: {"content": {MP4: {}}}},
        tags=["exports"],
    )
    async def animatic(
        generation_id: GenerationId,
        user: User,
        seconds_per_scene: Annotated[
            float, Query(gt=0, le=10, description="Seconds each scene shows.")
        ] = 2.0,
        crossfade: Annotated[
            float, Query(ge=0, le=5, description="Cross-fade seconds between scenes.")
        ] = 0.5,
        fps: Annotated[int, Query(ge=1, le=30, description="Frames per second.")] = 12,
    ) -> Response:
        """An animatic MP4 (H.264): each scene a few seconds, cross-faded into the next."""
        status = await owned_status(generation_id, user)
        pngs = await scene_pngs(generation_id, status)
        try:
            mp4 = await asyncio.to_thread(
                exports.animatic_mp4, [pngs[n] for n in sorted(pngs)], seconds_per_scene, crossfade, fps
            )
        except exports.ExportError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        return Response(mp4, media_type=MP4, headers=attachment(generation_id, "animatic.mp4"))

    return router
