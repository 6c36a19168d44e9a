"""What a generation leaves behind: scene images, variations, enhancement traces and exports."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from scenechain.protocol import SceneTrace

from api.deps import GenerationId, SceneNumber, Service, User, VariationNumber
from api.errors import ArtifactNotFound, ExportNotReady, error_responses
from api.exports import ExportError
from store.db import GenerationNotFound
from store.storage import StorageError

router = APIRouter()

PNG = "image/png"
MP4 = "video/mp4"

ARTIFACT_ERRORS = error_responses(GenerationNotFound, ArtifactNotFound, StorageError)
EXPORT_ERRORS = error_responses(GenerationNotFound, ExportNotReady, ExportError, StorageError)


def _attachment(generation_id: str, name: str) -> dict[str, str]:
    """Headers that make a browser save the export as ``<generation id>_<name>``."""
    return {"Content-Disposition": f'attachment; filename="{generation_id}_{name}"'}


# -- images and traces -----------------------------------------------------------------------------


@router.get(
    "/api/generations/{generation_id}/scenes/{scene}/image",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}, **ARTIFACT_ERRORS},
    tags=["images"],
)
async def scene_image(
    generation_id: GenerationId, scene: SceneNumber, user: User, service: Service
) -> Response:
    """PNG of a scene's kept image."""
    return Response(await service.scene_image(generation_id, scene, user), media_type=PNG)


@router.get(
    "/api/generations/{generation_id}/scenes/{scene}/variations/{k}",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}, **ARTIFACT_ERRORS},
    tags=["images"],
)
async def variation_image(
    generation_id: GenerationId,
    scene: SceneNumber,
    k: VariationNumber,
    user: User,
    service: Service,
) -> Response:
    """PNG of variation k of a scene (image_{k}.png of its trace)."""
    return Response(await service.variation_image(generation_id, scene, k, user), media_type=PNG)


@router.get(
    "/api/generations/{generation_id}/scenes/{scene}/trace",
    response_model=SceneTrace,
    responses=ARTIFACT_ERRORS,
    tags=["images"],
)
async def trace(generation_id: GenerationId, scene: SceneNumber, user: User, service: Service) -> SceneTrace:
    """The enhancement trace of a scene: original → each Cinematographer rewrite with the
    critic's scores → final prompt, plus the summary and the variations' quality scores."""
    return await service.scene_trace(generation_id, scene, user)


# -- exports -----------------------------------------------------------------------------------------


@router.get(
    "/api/generations/{generation_id}/export/contact-sheet.png",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}, **EXPORT_ERRORS},
    tags=["exports"],
)
async def contact_sheet(
    generation_id: GenerationId,
    user: User,
    service: Service,
    columns: Annotated[
        int | None, Query(ge=1, le=8, description="Scenes per row (default: up to 4).")
    ] = None,
) -> Response:
    """A storyboard contact sheet: scenes in order with captions, scores and chain arrows."""
    png = await service.contact_sheet(generation_id, user, columns=columns)
    return Response(png, media_type=PNG, headers=_attachment(generation_id, "contact_sheet.png"))


@router.get(
    "/api/generations/{generation_id}/export/animatic.mp4",
    response_class=Response,
    responses={200: {"content": {MP4: {}}}, **EXPORT_ERRORS},
    tags=["exports"],
)
async def animatic(
    generation_id: GenerationId,
    user: User,
    service: Service,
    seconds_per_scene: Annotated[float, Query(gt=0, le=10, description="Seconds each scene shows.")] = 2.0,
    crossfade: Annotated[float, Query(ge=0, le=5, description="Cross-fade seconds between scenes.")] = 0.5,
    fps: Annotated[int, Query(ge=1, le=30, description="Frames per second.")] = 12,
) -> Response:
    """An animatic MP4 (H.264): each scene a few seconds, cross-faded into the next."""
    mp4 = await service.animatic(generation_id, user, seconds_per_scene, crossfade, fps)
    return Response(mp4, media_type=MP4, headers=_attachment(generation_id, "animatic.mp4"))
