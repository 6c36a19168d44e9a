"""Idempotency-Key on POST /api/generate: a retried request gets the generation it already created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import RecordingDirector
from fastapi.testclient import TestClient

from api.auth import mint_token
from api.ingress import IngressService, create_api
from serve.config import AppArgs

BODY = {"prompt": "A 30-second ad for a solar bike light", "num_scenes": 2, "seed": 3}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, RecordingDirector, IngressService]]:
    director = RecordingDirector()
    service = IngressService(AppArgs(output_dir=str(tmp_path / "out")).ingress_settings(), director)
    with TestClient(create_api(service)) as client:
        yield client, director, service
    service.db.close()


def headers(user: str = "alice", key: str | None = None) -> dict[str, str]:
    result = {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}"}
    if key is not None:
        result["Idempotency-Key"] = key
    return result


def test_a_retry_with_the_same_key_returns_the_same_generation_and_queues_nothing(api) -> None:
    client, director, _service = api
    first = client.post("/api/generate", json=BODY, headers=headers(key="order-42"))
    retry = client.post("/api/generate", json=BODY, headers=headers(key="order-42"))
    assert first.status_code == retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert director.submitted == [first.json()["id"]]
    assert client.get("/api/generations", headers=headers()).json()["total"] == 1


def test_the_same_key_with_another_body_is_a_409_that_says_why(api) -> None:
    client, director, _service = api
    client.post("/api/generate", json=BODY, headers=headers(key="order-42"))
    other = client.post("/api/generate", json={**BODY, "num_scenes": 3}, headers=headers(key="order-42"))
    assert other.status_code == 409
    assert "different request body" in other.json()["detail"]
    assert len(director.submitted) == 1


def test_keys_are_per_user_and_optional(api) -> None:
    client, director, _service = api
    alice = client.post("/api/generate", json=BODY, headers=headers("alice", key="k1")).json()["id"]
    bob = client.post("/api/generate", json=BODY, headers=headers("bob", key="k1")).json()["id"]
    plain_1 = client.post("/api/generate", json=BODY, headers=headers()).json()["id"]
    plain_2 = client.post("/api/generate", json=BODY, headers=headers()).json()["id"]
    assert len({alice, bob, plain_1, plain_2}) == 4
    assert len(director.submitted) == 4


@pytest.mark.parametrize("key", ["", "has space", "x" * 129])
def test_a_malformed_key_is_a_422(api, key: str) -> None:
    client, director, _service = api
    answer = client.post("/api/generate", json=BODY, headers=headers(key=key))
    assert answer.status_code == 422, answer.text
    assert "Idempotency-Key" in answer.json()["detail"]
    assert director.submitted == []
