"""Liveness for load balancers and ``serve status`` (no auth)."""

from fastapi import APIRouter
from scenechain.protocol import Health

from api.deps import Service

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
async def healthz(service: Service) -> Health:
    """Liveness (no auth)."""
    return Health(status="ok", app=service.settings.app_name, profile=service.settings.profile)
