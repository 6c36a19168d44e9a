"""Bearer JWT: verify (HS256 by default, RS256 with a public key), mint tokens, judge serving keys.

Keys rotate without downtime: the first key signs, every configured key verifies (``secret`` then
``previous_secrets``; ``public_key`` then ``previous_public_keys``), and a token's ``kid`` header
(a short fingerprint of the key that signed it, set by ``mint_token``) picks its key directly.

No secret has a known default. An unconfigured ``JwtSettings`` signs and verifies with a random key
made once per process, which no other process knows (in-process use: tests, tools); serving needs
a configured key, and ``check_serving_keys`` is what refuses a missing, short or public one.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
from typing import Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, model_validator

SECRET_ENV = "SCENECHAIN_JWT_SECRET"
PREVIOUS_SECRETS_ENV = "SCENECHAIN_JWT_PREVIOUS_SECRETS"
SECRETS_FILE_ENV = "SCENECHAIN_JWT_SECRETS_FILE"
PUBLIC_KEY_ENV = "SCENECHAIN_JWT_PUBLIC_KEY_FILE"
PREVIOUS_PUBLIC_KEYS_ENV = "SCENECHAIN_JWT_PREVIOUS_PUBLIC_KEY_FILES"
PRIVATE_KEY_ENV = "SCENECHAIN_JWT_PRIVATE_KEY_FILE"

# RFC 7518 3.2: an HS256 key at least as long as the hash output.
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048

# Values anyone can read (former defaults, documented examples, this repository's test keys): never a
# serving key, whatever their length.
KNOWN_PUBLIC_SECRETS: frozenset[str] = frozenset(
    {
        "scenechain-dev-secret-change-me-in-production",  # the default until issue #19
        "<a long random string>",  # the placeholder of docs/deploy.md
        "a-test-secret-that-is-long-enough-for-hs256",  # tests/unit/api/test_auth_attacks.py
        "another-secret-that-is-long-enough-too",  # tests/unit/api/test_auth_attacks.py
    }
)

_GENERATE_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"


class JwtSettings(BaseModel):
    """Bearer-token verification (and token minting)."""

    # Validation errors would otherwise quote their input, keys included.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    algorithm: Literal["HS256", "RS256"] = Field(default="HS256", description="JWT signature algorithm.")
    secret: str | None = Field(
        default=None,
        repr=False,
        description="HS256 signing secret (SCENECHAIN_JWT_SECRET), at least 32 bytes; None: not configured.",
    )
    previous_secrets: list[str] = Field(
        default_factory=list,
        repr=False,
        description="HS256 secrets still accepted, never used to sign (SCENECHAIN_JWT_PREVIOUS_SECRETS).",
    )
    public_key: str | None = Field(default=None, description="RS256 PEM public key (verification).")
    previous_public_keys: list[str] = Field(
        default_factory=list,
        description="RS256 PEM public keys still accepted during a rotation (verification only).",
    )
    private_key: str | None = Field(
        default=None, repr=False, description="RS256 PEM private key (only to mint tokens; not for serving)."
    )
    issuer: str = Field(default="scenechain", description="Expected 'iss' claim.")
    audience: str | None = Field(default=None, description="Expected 'aud' claim, if any.")
    default_ttl_s: int = Field(default=24 * 3600, ge=1, description="Lifetime of minted tokens.")

    @model_validator(mode="after")
    def _check_keys(self) -> JwtSettings:
        if self.algorithm == "RS256" and not self.public_key:
            raise ValueError(f"jwt.algorithm RS256 needs jwt.public_key (set {PUBLIC_KEY_ENV})")
        return self

    def signing_secret(self) -> str:
        """The HS256 key that signs: ``secret``, or this process's random key when none is configured."""
        return self.secret if self.secret is not None else _process_secret()

    def for_verification(self) -> JwtSettings:
        """A copy without the RS256 private key: what a serving replica receives."""
        return self.model_copy(update={"private_key": None})


_USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


class AuthError(ValueError):
    """Missing, malformed, expired or wrongly signed token (HTTP 401)."""


class InsecureKeyError(ValueError):
    """A JWT key that must not serve: missing, too short, publicly known or unreadable."""


@functools.cache
def _process_secret() -> str:
    """A random HS256 key made once per process (what an unconfigured JwtSettings uses)."""
    return secrets.token_urlsafe(48)


# -- key ids -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _fingerprint(algorithm: str, key: str) -> str:
    """The ``kid`` of a key: 16 hex digits of SHA-256 (of the DER public key for RS256)."""
    if algorithm == "RS256":
        material = _load_rsa_public(key).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        # Domain-separated: the kid of a secret is no hash anyone computes for another purpose.
        material = b"scenechain-jwt-kid\x00" + key.encode()
    return hashlib.sha256(material).hexdigest()[:16]


def _load_rsa_public(pem: str) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM (ValueError when it is not one)."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"not an RSA public key ({type(key).__name__})")
    return key


def _public_of_private(pem: str) -> str:
    """The PEM public key of an RSA private key."""
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signing_key_id(settings: JwtSettings) -> str:
    """The ``kid`` that ``mint_token`` puts in the header (the signing key's fingerprint)."""
    if settings.algorithm == "RS256":
        if not settings.private_key:
            raise ValueError(f"minting RS256 tokens needs jwt.private_key (set {PRIVATE_KEY_ENV})")
        return _fingerprint("RS256", _public_of_private(settings.private_key))
    return _fingerprint("HS256", settings.signing_secret())


def verification_keys(settings: JwtSettings) -> list[tuple[str, str]]:
    """(kid, key) of every key a token may be signed with, the signing key first."""
    if settings.algorithm == "RS256":
        keys = [settings.public_key or "", *settings.previous_public_keys]
    else:
        keys = [settings.signing_secret(), *settings.previous_secrets]
    return [(_fingerprint(settings.algorithm, key), key) for key in keys]


# -- tokens ------------------------------------------------------------------------------------------


def mint_token(settings: JwtSettings, user: str, ttl_s: int | None = None) -> str:
    """A signed token whose 'sub' is ``user`` and whose 'kid' names the signing key."""
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
    headers = {"kid": signing_key_id(settings)}  # raises for RS256 without a private key
    key = (settings.private_key or "") if settings.algorithm == "RS256" else settings.signing_secret()
    return jwt.encode(claims, key, algorithm=settings.algorithm, headers=headers)


def verify_token(settings: JwtSettings, token: str) -> str:
    """The user ('sub') of a valid token; raises AuthError otherwise."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    keys = verification_keys(settings)
    if kid is not None:
        # A kid picks its one key; an unknown kid is a key this server does not (or no longer) accept.
        keys = [(key_id, key) for key_id, key in keys if key_id == kid]
        if not keys:
            raise AuthError("invalid token: signed with a key this server does not accept (unknown 'kid')")
    claims: dict[str, object] | None = None
    failure: jwt.PyJWTError | None = None
    for _, key in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[settings.algorithm],
                issuer=settings.issuer,
                audience=settings.audience,
                options={"require": ["sub", "exp"], "verify_aud": settings.audience is not None},
            )
            break
        except jwt.InvalidSignatureError as exc:  # maybe another key's: try the next one
            failure = exc
        except jwt.PyJWTError as exc:  # the signature held: the claims are what is wrong
            raise AuthError(f"invalid token: {exc}") from exc
    if claims is None:
        raise AuthError(f"invalid token: {failure or 'no key to verify with'}")
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


# -- serving keys ------------------------------------------------------------------------------------


def check_secret(secret: str | None, name: str = SECRET_ENV) -> None:
    """InsecureKeyError unless ``secret`` may sign or verify served tokens; the message names
    ``name`` (the variable to set) and never the value."""
    if secret is None or not secret.strip():
        raise InsecureKeyError(
            f"{name} is not set: the API's HS256 token secret is required outside loopback dev "
            f"(only `scenechain run` of a tiny profile on a loopback address generates one). "
            f"Set {name} (or {SECRETS_FILE_ENV}) to at least {MIN_SECRET_BYTES} random bytes, {_GENERATE_HINT}"
        )
    if secret in KNOWN_PUBLIC_SECRETS or secret.strip() in KNOWN_PUBLIC_SECRETS:
        raise InsecureKeyError(
            f"{name} is a publicly known value (a former default or a documented example): anyone "
            f"could sign tokens with it. Set {name} to a new random value, {_GENERATE_HINT}"
        )
    length = len(secret.encode())
    if length < MIN_SECRET_BYTES:
        raise InsecureKeyError(
            f"{name} is {length} bytes; an HS256 secret needs at least {MIN_SECRET_BYTES}. "
            f"Set {name} to a longer random value, {_GENERATE_HINT}"
        )


def check_public_key(pem: str | None, name: str = PUBLIC_KEY_ENV) -> None:
    """InsecureKeyError unless ``pem`` is an RSA public key of at least MIN_RSA_BITS bits."""
    if not pem or not pem.strip():
        raise InsecureKeyError(f"{name} is not set: RS256 verification needs the issuer's PEM public key")
    try:
        key = _load_rsa_public(pem)
    except ValueError as exc:
        raise InsecureKeyError(f"{name} does not hold a PEM RSA public key: {exc}") from None
    bits = key.key_size
    if bits < MIN_RSA_BITS:
        raise InsecureKeyError(f"{name} is a {bits}-bit RSA key; RS256 needs at least {MIN_RSA_BITS} bits")


def check_serving_keys(settings: JwtSettings) -> None:
    """InsecureKeyError unless every key of ``settings`` may serve: HS256 secrets configured, at least
    32 bytes and not publicly known; RS256 public keys present and parsable (no private key needed)."""
    if settings.algorithm == "RS256":
        check_public_key(settings.public_key)
        for n, pem in enumerate(settings.previous_public_keys, start=1):
            check_public_key(pem, f"{PREVIOUS_PUBLIC_KEYS_ENV} (key {n})")
        return
    check_secret(settings.secret)
    for n, previous in enumerate(settings.previous_secrets, start=1):
        check_secret(previous, f"{PREVIOUS_SECRETS_ENV} entry {n} (or line {n + 1} of {SECRETS_FILE_ENV})")
