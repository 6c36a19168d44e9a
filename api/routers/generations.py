"""Generations: submit, status, list and cancel."""

from typing import Annotated

from fastapi import APIRouter, Header
from scenechain.protocol import (
    GenerateAccepted,
    GenerateRequest,
    GenerationPage,
    GenerationStatus,
    OverloadedBody,
    QuotaExceededBody,
)

from api.deps import GenerationId, PageLimit, PageOffset, Service, User
from api.protocol import IDEMPOTENCY_KEY_RE

router = APIRouter(tags=["generations"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe submission: the same key and body return the same generation.",
        json_schema_extra={"pattern": IDEMPOTENCY_KEY_RE.pattern},
    ),
]


@router.post(
    "/api/generate",
    status_code=202,
    response_model=GenerateAccepted,
    responses={
        429: {"model": QuotaExceededBody, "description": "A per-user quota; retry after Retry-After."},
        503: {"model": OverloadedBody, "description": "The service is full; retry after Retry-After."},
    },
)
async def generate(
    body: GenerateRequest, user: User, service: Service, idempotency_key: IdempotencyKey = None
) -> GenerateAccepted:
    """Submit a generation; answers 202 at once with the id and where to poll."""
    return await service.submit(body, user, idempotency_key)


@router.get("/api/status/{generation_id}", response_model=GenerationStatus)
async def status(generation_id: GenerationId, user: User, service: Service) -> GenerationStatus:
    """The status document of one of the caller's generations."""
    return await service.status(generation_id, user)


@router.get("/api/generations", response_model=GenerationPage)
async def list_generations(
    user: User, service: Service, limit: PageLimit = 20, offset: PageOffset = 0
) -> GenerationPage:
    """The caller's generations, newest first."""
    return await service.list_generations(user, limit=limit, offset=offset)


@router.post("/api/generations/{generation_id}/cancel", response_model=GenerationStatus)
async def cancel(generation_id: GenerationId, user: User, service: Service) -> GenerationStatus:
    """Cancel one of the caller's unfinished generations."""
    return await service.cancel(generation_id, user)
