"""Bearer JWT: verify (HS256 by default, RS256 with a public key) and mint dev tokens."""

from __future__ import annotations

import re
import time
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_DEV_SECRET = (
    "scenechain-dev-secret-change-me-in-production"  # dev only; production sets SCENECHAIN_JWT_SECRET
)


class JwtSettings(BaseModel):
    """Bearer-token verification (and dev-token minting)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["HS256", "RS256"] = Field(default="HS256", description="JWT signature algorithm.")
    secret: str = Field(default=DEFAULT_DEV_SECRET, description="HS256 shared secret.")
    public_key: str | None = Field(default=None, description="RS256 PEM public key (verification).")
    private_key: str | None = Field(default=None, description="RS256 PEM private key (only to mint tokens).")
    issuer: str = Field(default="scenechain", description="Expected 'iss' claim.")
    audience: str | None = Field(default=None, description="Expected 'aud' claim, if any.")
    default_ttl_s: int = Field(default=24 * 3600, ge=1, description="Lifetime of minted dev tokens.")

    @model_validator(mode="after")
    def _check_keys(self) -> JwtSettings:
        if self.algorithm == "RS256" and not self.public_key:
            raise ValueError("jwt.algorithm RS256 needs jwt.public_key")
        return self


_USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


class AuthError(ValueError):
    """Missing, malformed, expired or wrongly signed token (HTTP 401)."""


def mint_token(settings: JwtSettings, user: str, ttl_s: int | None = None) -> str:
    """A signed token whose 'sub' is ``user``; RS256 needs ``settings.private_key``."""
    if not _USER_RE.match(user):
        raise ValueError(f"invalid user name {user!r}: use 1-128 of letters, digits, '_.@-'")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user,
        "iss": settings.issuer,
        "iat": now,
        "exp": now + (ttl_s if ttl_s is not None else settings.default_ttl_s),
    }
    if settings.audience:
        claims["aud"] = settings.audience
    if settings.algorithm == "RS256":
        if not settings.private_key:
            raise ValueError("minting RS256 tokens needs jwt.private_key")
        return jwt.encode(claims, settings.private_key, algorithm="RS256")
    return jwt.encode(claims, settings.secret, algorithm="HS256")


def verify_token(settings: JwtSettings, token: str) -> str:
    """The user ('sub') of a valid token; raises AuthError otherwise."""
    key = settings.public_key if settings.algorithm == "RS256" else settings.secret
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.algorithm],
            issuer=settings.issuer,
            audience=settings.audience,
            options={"require": ["sub", "exp"], "verify_aud": settings.audience is not None},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    user = claims.get("sub")
    if not isinstance(user, str) or not _USER_RE.match(user):
        raise AuthError("invalid token: bad 'sub' claim")
    return user


def user_from_authorization(settings: JwtSettings, header: str | None) -> str:
    """The user of an ``Authorization: Bearer <jwt>`` header; raises AuthError."""
    if not header:
        raise AuthError("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("expected 'Authorization: Bearer <token>'")
    return verify_token(settings, token.strip())
