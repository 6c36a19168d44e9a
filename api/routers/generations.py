"""Generations: submit, status, list and cancel."""

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.exceptions import RequestValidationError
from ray.serve.exceptions import BackPressureError
from scenechain.protocol import (
    GenerateAccepted,
    GenerateRequest,
    GenerationPage,
    GenerationStatus,
)

from api.deps import (
    GenerationId,
    PageLimit,
    PageOffset,
    Service,
    User,
    generation_links,
    optional_header,
)
from api.errors import (
    IdempotencyConflict,
    InvalidHeader,
    InvalidIdempotencyKey,
    Overloaded,
    QuotaExceeded,
    error_responses,
)
from api.images import InvalidReferenceImage, ReferenceImageTooLarge, UploadNotFound
from api.protocol import (
    CANCEL_AFTER_PATTERN,
    IDEMPOTENCY_KEY_RE,
    PREFER_WAIT_PATTERN,
    parse_cancel_after,
    parse_prefer_wait,
)
from director.webhooks import InvalidWebhook
from store.db import GenerationNotFound
from store.storage import StorageError

router = APIRouter(tags=["generations"])

# What a submission's answer leads to: every operation on the generation it names.
GENERATION_OPERATIONS = (
    "status",
    "cancel",
    "events",
    "scene_image",
    "variation_image",
    "trace",
    "contact_sheet",
    "animatic",
)

PreferHeader = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description="'wait=N' (N 1-60 s; 'wait' alone: 60): answer 200 with the finished status if the "
        "job ends within N seconds, else 202 as usual.",
        json_schema_extra=optional_header(PREFER_WAIT_PATTERN),
    ),
]
CancelAfterHeader = Annotated[
    str | None,
    Header(
        alias="Cancel-After",
        description="Deadline after submission: whole seconds ('90') or with a unit ('90s', '5m', '2h'), "
        "capped at 24h; the job is cancelled with reason 'deadline' if unfinished by then (with "
        "deadline_s in the body too, the earlier one holds).",
        json_schema_extra=optional_header(CANCEL_AFTER_PATTERN),
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe submission: the same key and body return the same generation.",
        json_schema_extra=optional_header(IDEMPOTENCY_KEY_RE.pattern),
    ),
]


@router.post(
    "/api/generate",
    status_code=202,
    response_model=GenerateAccepted | GenerationStatus,
    responses={
        200: {
            "model": GenerationStatus,
            "description": "Prefer: wait=N and the job finished within N seconds: its final status.",
            "links": generation_links(*GENERATION_OPERATIONS),
        },
        202: {
            "model": GenerateAccepted,
            "description": "Accepted: poll status_url (or wait for webhooks).",
            "links": generation_links(*GENERATION_OPERATIONS),
        },
        **error_responses(
            UploadNotFound,
            IdempotencyConflict,
            ReferenceImageTooLarge,
            RequestValidationError,
            InvalidIdempotencyKey,
            InvalidHeader,
            InvalidWebhook,
            InvalidReferenceImage,
            QuotaExceeded,
            Overloaded,
            StorageError,
        ),
    },
)
async def generate(
    body: GenerateRequest,
    user: User,
    service: Service,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    prefer: PreferHeader = None,
    cancel_after: CancelAfterHeader = None,
) -> GenerateAccepted | GenerationStatus:
    """Submit a generation; answers 202 at once with the id and where to poll.

    With ``Prefer: wait=N`` (N <= 60) it answers 200 with the final status document when the job
    finishes within N seconds, else the same 202; the job is the same either way.
    """
    try:
        wait_s = parse_prefer_wait(prefer) if prefer is not None else None
        cancel_after_s = parse_cancel_after(cancel_after) if cancel_after is not None else None
    except ValueError as exc:
        raise InvalidHeader(str(exc)) from None
    if wait_s is None:
        return await service.submit(body, user, idempotency_key, cancel_after_s=cancel_after_s)
    answer = await service.submit_and_wait(
        body, user, idempotency_key, wait_s=wait_s, cancel_after_s=cancel_after_s
    )
    response.headers["Preference-Applied"] = f"wait={min(wait_s, service.settings.max_wait_s)}"
    if isinstance(answer, GenerationStatus):
        response.status_code = 200
    return answer


@router.get(
    "/api/status/{generation_id}",
    response_model=GenerationStatus,
    responses=error_responses(GenerationNotFound),
)
async def status(generation_id: GenerationId, user: User, service: Service) -> GenerationStatus:
    """The status document of one of the caller's generations."""
    return await service.status(generation_id, user)


@router.get("/api/generations", response_model=GenerationPage)
async def list_generations(
    user: User, service: Service, limit: PageLimit = 20, offset: PageOffset = 0
) -> GenerationPage:
    """The caller's generations, newest first."""
    return await service.list_generations(user, limit=limit, offset=offset)


@router.post(
    "/api/generations/{generation_id}/cancel",
    response_model=GenerationStatus,
    responses=error_responses(GenerationNotFound, BackPressureError),
)
async def cancel(generation_id: GenerationId, user: User, service: Service) -> GenerationStatus:
    """Cancel one of the caller's unfinished generations."""
    return await service.cancel(generation_id, user)
