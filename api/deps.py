"""FastAPI dependencies and parameter types shared by every router.

Routes get the ``IngressService`` from the app (``create_api`` puts it on ``app.state``), the
caller from the one ``current_user`` dependency, and path/query parameters from the aliases
below, so a rule (the id format, the page bounds) is written once. A route's operationId in the
OpenAPI document is its function name (``operation_id``): what generated clients call it.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import user_from_authorization
from api.protocol import GENERATION_ID_PATTERN
from api.service import IngressService


def get_service(request: Request) -> IngressService:
    """The ``IngressService`` the app was built on."""
    return request.app.state.service


Service = Annotated[IngressService, Depends(get_service)]


# Documents the scheme (OpenAPI `security`); it refuses nothing: current_user does, with messages.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT signed with the service's key; its 'sub' is the user.",
)


async def current_user(
    service: Service,
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> str:
    """The caller, from the Bearer JWT (AuthError, answered 401, otherwise)."""
    return user_from_authorization(service.settings.jwt, request.headers.get("authorization"))


User = Annotated[str, Depends(current_user)]
GenerationId = Annotated[str, Path(pattern=GENERATION_ID_PATTERN, description="Generation id.")]
SceneNumber = Annotated[int, Path(ge=1, le=64, description="1-based scene number.")]
VariationNumber = Annotated[int, Path(ge=1, le=8, description="1-based variation number.")]
PageLimit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
# Bounded: SQLite/PostgreSQL OFFSET is a signed 64-bit integer (2**63 was a 500).
PageOffset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Rows to skip.")]


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: its function name (``status``, ``cancel``), unique in the app."""
    return route.name


def generation_links(*operation_ids: str, id_at: str = "$response.body#/id") -> dict[str, Any]:
    """OpenAPI links from an answer that names a generation to the operations taking its id
    (clients and schemathesis' stateful tests follow them: submit -> status, cancel, images ...)."""
    return {
        operation: {
            "operationId": operation,
            "parameters": {"generation_id": id_at},
            "description": f"`{operation}` of the generation this answer names.",
        }
        for operation in operation_ids
    }


def optional_header(pattern: str) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` of an optional header: a string matching ``pattern``, never null (an
    absent header is absent; a client told null is allowed would send the text 'null')."""

    def extra(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema.update({"type": "string", "pattern": pattern})

    return extra
