"""Uploads: a product image sent once, referenced by id as a generation's ``reference_image``.

The body is the raw file (no multipart), so ``curl --data-binary @product.png -H 'Content-Type:
image/png'`` uploads it. The Content-Type must be an image type we take (else 415); the bytes decide
the format, whatever the header says. Uploads are the caller's own: another user's id is a 404.
"""

from fastapi import APIRouter, Request
from scenechain.protocol import UploadedImage

from api.deps import Service, User
from api.errors import error_responses
from api.images import (
    MAX_IMAGE_BYTES,
    UPLOAD_CONTENT_TYPES,
    InvalidReferenceImage,
    ReferenceImageTooLarge,
    UnsupportedUploadType,
)
from store.storage import StorageError

router = APIRouter(tags=["uploads"])


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes, declared or not."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ReferenceImageTooLarge(
                f"the uploaded file is over {limit} bytes (8 MiB), the limit: compress or scale it down"
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/uploads",
    status_code=201,
    response_model=UploadedImage,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The image file itself (PNG, JPEG or WebP, at most 8 MiB).",
            "content": {
                kind: {"schema": {"type": "string", "format": "binary"}} for kind in UPLOAD_CONTENT_TYPES
            },
        }
    },
    responses=error_responses(
        ReferenceImageTooLarge, UnsupportedUploadType, InvalidReferenceImage, StorageError
    ),
)
async def upload(request: Request, user: User, service: Service) -> UploadedImage:
    """Upload a product image (the raw file as the body); answers 201 with its id for reference_image."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in UPLOAD_CONTENT_TYPES:
        raise UnsupportedUploadType(
            f"Content-Type {content_type or '(none)'!r} is not taken here; send the raw image file as the "
            f"body with Content-Type {', '.join(UPLOAD_CONTENT_TYPES[:3])} (multipart forms are not read)"
        )
    return await service.upload_image(await read_body(request, MAX_IMAGE_BYTES), user)
