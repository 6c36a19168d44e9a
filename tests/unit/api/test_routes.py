"""HTTP routes on a real DB and store with a fake Director: auth, validation, ownership, images."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import RecordingDirector, fake_png
from fastapi.testclient import TestClient

from api.auth import mint_token
from api.ingress import IngressService, create_api
from serve.config import AppArgs


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, IngressService, RecordingDirector]:
    args = AppArgs(output_dir=str(tmp_path / "out"))
    director = RecordingDirector()
    service = IngressService(args.ingress_settings(), director)
    with TestClient(create_api(service)) as client:
        yield client, service, director
    service.db.close()


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}"}


def test_generate_answers_202_and_hands_over_to_director(api) -> None:
    client, _service, director = api
    answer = client.post("/api/generate", json={"prompt": "a coffee ad", "seed": 3}, headers=auth())
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "queued" and body["status_url"] == f"/api/status/{body['id']}"
    assert director.submitted == [body["id"]]
    status = client.get(body["status_url"], headers=auth()).json()
    assert status["status"] == "queued" and status["seed"] == 3
    assert status["progress"] == {"scenes_done": 0, "scenes_total": 4, "stage": "queued"}
    assert status["advanced_image_generation_used"] is False


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("advanced_image_num_variations", 9, "2 to 8"),
        ("advanced_image_num_variations", 1, "2 to 8"),
        ("advanced_image_quality_threshold", 101, "0.0 to 100.0"),
        ("advanced_image_max_enhancement_iterations", 0, "1 to 10"),
        ("num_scenes", 9, "1 to 8"),
    ],
)
def test_out_of_range_is_422_naming_field_and_range(api, field: str, value: float, allowed: str) -> None:
    client, _, director = api
    answer = client.post("/api/generate", json={"prompt": "x", field: value}, headers=auth())
    assert answer.status_code == 422
    message = answer.json()["detail"][0]["msg"]
    assert field in message and allowed in message
    assert director.submitted == []


def test_unknown_field_and_missing_prompt_are_422(api) -> None:
    client, _, _ = api
    answer = client.post("/api/generate", json={"prompt": "x", "colour": "red"}, headers=auth())
    assert answer.status_code == 422 and "unknown field 'colour'" in answer.json()["detail"][0]["msg"]
    assert client.post("/api/generate", json={}, headers=auth()).status_code == 422


def test_missing_or_invalid_token_is_401(api) -> None:
    client, _, _ = api
    assert client.post("/api/generate", json={"prompt": "x"}).status_code == 401
    assert client.get("/api/generations", headers={"Authorization": "Bearer nope"}).status_code == 401
    forged = AppArgs(jwt={"secret": "another-secret"}).jwt
    headers = {"Authorization": f"Bearer {mint_token(forged, 'alice')}"}
    assert client.get("/api/generations", headers=headers).status_code == 401
    expired = {"Authorization": f"Bearer {mint_token(AppArgs().jwt, 'alice', ttl_s=-10)}"}
    assert client.get("/api/generations", headers=expired).status_code == 401


def test_other_users_generation_is_404_everywhere(api) -> None:
    client, service, _ = api
    gid = client.post("/api/generate", json={"prompt": "x"}, headers=auth("alice")).json()["id"]
    service.storage.write_scene_image(gid, 1, fake_png(1))
    service.storage.write_variation(gid, 1, 1, fake_png(1))
    for path in (
        f"/api/status/{gid}",
        f"/api/generations/{gid}/scenes/1/image",
        f"/api/generations/{gid}/scenes/1/variations/1",
    ):
        assert client.get(path, headers=auth("alice")).status_code == 200
        answer = client.get(path, headers=auth("mallory"))
        assert answer.status_code == 404
    assert client.get("/api/status/doesnotexist", headers=auth("alice")).status_code == 404
    assert client.post(f"/api/generations/{gid}/cancel", headers=auth("mallory")).status_code == 404


def test_images_are_png_and_404_until_written(api) -> None:
    client, service, _ = api
    gid = client.post("/api/generate", json={"prompt": "x"}, headers=auth()).json()["id"]
    assert client.get(f"/api/generations/{gid}/scenes/1/image", headers=auth()).status_code == 404
    service.storage.write_scene_image(gid, 1, fake_png("kept"))
    answer = client.get(f"/api/generations/{gid}/scenes/1/image", headers=auth())
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.content == fake_png("kept")
    assert client.get(f"/api/generations/{gid}/scenes/1/image").status_code == 401


def test_list_is_own_and_paginated(api) -> None:
    client, _, _ = api
    ids = [
        client.post("/api/generate", json={"prompt": f"p{i}"}, headers=auth()).json()["id"] for i in range(3)
    ]
    client.post("/api/generate", json={"prompt": "other"}, headers=auth("bob"))
    page = client.get("/api/generations?limit=2&offset=0", headers=auth()).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = client.get("/api/generations?limit=2&offset=2", headers=auth()).json()
    assert {item["id"] for item in page["items"] + rest["items"]} == set(ids)
    assert client.get("/api/generations?limit=0", headers=auth()).status_code == 422


def test_healthz_and_openapi(api) -> None:
    client, _, _ = api
    assert client.get("/healthz").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    assert "/api/generate" in schema["paths"] and "/api/status/{generation_id}" in schema["paths"]
    assert client.get("/docs").status_code == 200
