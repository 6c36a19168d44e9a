"""Bearer JWT: verify (HS256 by default, RS256 with a public key) and mint dev tokens."""

from __future__ import annotations

import re
import time

import jwt

from serve.config import JwtSettings

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
