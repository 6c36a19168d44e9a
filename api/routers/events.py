"""Live events of a generation as Server-Sent Events (resumable with ``Last-Event-ID``)."""

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from api.deps import GenerationId, Service, User
from api.errors import error_responses
from store.db import GenerationNotFound

router = APIRouter(tags=["generations"])

# No proxy buffering or caching: each event must reach the browser as it is written.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


@router.get(
    "/api/generations/{generation_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(GenerationNotFound)},
)
async def events(
    generation_id: GenerationId,
    user: User,
    service: Service,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[
        str | None, Query(description="Resume after this event (as Last-Event-ID).")
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events of a generation: stage, enhancer_iteration, variation_scored, best_picked,
    warning, scene_done, error, done (the last). Reconnect with Last-Event-ID to resume."""
    stream = await service.event_stream(generation_id, user, last_event_id_header or last_event_id)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
