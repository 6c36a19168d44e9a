"""FastAPI dependencies and parameter types shared by every router.

Routes get the ``IngressService`` from the app (``create_api`` puts it on ``app.state``), the
caller from the one ``current_user`` dependency, and path/query parameters from the aliases
below, so a rule (the id format, the page bounds) is written once.
"""

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request

from api.auth import user_from_authorization
from api.protocol import GENERATION_ID_PATTERN
from api.service import IngressService


def get_service(request: Request) -> IngressService:
    """The ``IngressService`` the app was built on."""
    return request.app.state.service


Service = Annotated[IngressService, Depends(get_service)]


async def current_user(service: Service, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller, from the Bearer JWT (AuthError, answered 401, otherwise)."""
    return user_from_authorization(service.settings.jwt, authorization)


User = Annotated[str, Depends(current_user)]
GenerationId = Annotated[str, Path(pattern=GENERATION_ID_PATTERN, description="Generation id.")]
SceneNumber = Annotated[int, Path(ge=1, le=64, description="1-based scene number.")]
VariationNumber = Annotated[int, Path(ge=1, le=8, description="1-based variation number.")]
PageLimit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
# Bounded: SQLite/PostgreSQL OFFSET is a signed 64-bit integer (2**63 was a 500).
PageOffset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Rows to skip.")]
