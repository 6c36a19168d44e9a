"""Hostile tokens against the real ingress (no Ray): every one is a 401 that leaks nothing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fakes import RecordingDirector
from fastapi.testclient import TestClient

from api.auth import JwtSettings, mint_token
from api.ingress import IngressService, create_api
from serve.config import AppArgs

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
BODY = {"prompt": "A 30-second ad for a solar bike light", "num_scenes": 1}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    args = AppArgs(
        output_dir=str(tmp_path / "out"), jwt=JwtSettings(secret=SECRET, audience="scenechain-api")
    )
    service = IngressService(args.ingress_settings(), RecordingDirector())
    with TestClient(create_api(service)) as test_client:
        yield test_client
    service.db.close()


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "mallory",
        "iss": "scenechain",
        "aud": "scenechain-api",
        "iat": now,
        "exp": now + 600,
        **overrides,
    }


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def rsa_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


HOSTILE = {
    "alg none": lambda: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
    "expired": lambda: jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
    "not yet valid": lambda: jwt.encode(claims(nbf=int(time.time()) + 3600), SECRET, algorithm="HS256"),
    "wrong signature": lambda: jwt.encode(
        claims(), "another-secret-that-is-long-enough-too", algorithm="HS256"
    ),
    "wrong issuer": lambda: jwt.encode(claims(iss="evil"), SECRET, algorithm="HS256"),
    "wrong audience": lambda: jwt.encode(claims(aud="other-api"), SECRET, algorithm="HS256"),
    "no audience": lambda: jwt.encode(
        {k: v for k, v in claims().items() if k != "aud"}, SECRET, algorithm="HS256"
    ),
    "no expiry": lambda: jwt.encode(
        {k: v for k, v in claims().items() if k != "exp"}, SECRET, algorithm="HS256"
    ),
    "no subject": lambda: jwt.encode(
        {k: v for k, v in claims().items() if k != "sub"}, SECRET, algorithm="HS256"
    ),
    "path in subject": lambda: jwt.encode(claims(sub="../../etc/passwd"), SECRET, algorithm="HS256"),
    "RS256 instead of HS256": lambda: jwt.encode(claims(), rsa_private_pem(), algorithm="RS256"),
    "HS512 with the right secret": lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
    "tampered payload": lambda: (
        lambda t: ".".join([t.split(".")[0], b64(claims(sub="admin")), t.split(".")[2]])
    )(jwt.encode(claims(), SECRET, algorithm="HS256")),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_token_is_401_and_not_echoed(client: TestClient, attack: str) -> None:
    token = HOSTILE[attack]()
    for answer in (
        client.post("/api/generate", json=BODY, headers={"Authorization": f"Bearer {token}"}),
        client.get("/api/generations", headers={"Authorization": f"Bearer {token}"}),
    ):
        assert answer.status_code == 401, (attack, answer.status_code, answer.text)
        assert token not in answer.text
        assert SECRET not in answer.text


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Token abc", "Bearer a b c"]
)
def test_malformed_authorization_header_is_401(client: TestClient, header: str) -> None:
    answer = client.post("/api/generate", json=BODY, headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.json()["detail"]


def test_the_valid_token_of_the_same_settings_is_accepted(client: TestClient) -> None:
    # The control: the same client and body with an honest token get through.
    settings = JwtSettings(secret=SECRET, audience="scenechain-api")
    answer = client.post(
        "/api/generate", json=BODY, headers={"Authorization": f"Bearer {mint_token(settings, 'alice')}"}
    )
    assert answer.status_code == 202


def test_one_user_cannot_see_anothers_generation(client: TestClient) -> None:
    settings = JwtSettings(secret=SECRET, audience="scenechain-api")
    alice = {"Authorization": f"Bearer {mint_token(settings, 'alice')}"}
    bob = {"Authorization": f"Bearer {mint_token(settings, 'bob')}"}
    generation_id = client.post("/api/generate", json=BODY, headers=alice).json()["id"]
    for path in (
        f"/api/status/{generation_id}",
        f"/api/generations/{generation_id}/scenes/1/image",
        f"/api/generations/{generation_id}/events",
        f"/api/generations/{generation_id}/export/contact-sheet.png",
    ):
        assert client.get(path, headers=bob).status_code == 404, path
    assert client.post(f"/api/generations/{generation_id}/cancel", headers=bob).status_code == 404
    assert client.get(f"/api/status/{generation_id}", headers=alice).status_code == 200
