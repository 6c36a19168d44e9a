# ruff: noqa: F811
"""The client's job options: Prefer: wait, Cancel-After, webhooks, a product reference image, and
the CLI flags that send them (the HTTP peer is ``httpx.MockTransport`` answering as the ingress does)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image
from scenechain.protocol import GenerateAccepted, GenerationStatus

# `drive` is test_client's fixture (the sync and the async client alike), imported to be used here.
from test_client import GID, Driver, completed_server, drive, run_cli, status_doc  # noqa: F401


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_wait_sends_prefer_and_returns_the_finished_status_on_200(drive: Driver) -> None:
    server = completed_server(**{"POST /api/generate": httpx.Response(200, json=status_doc("completed"))})
    answer = drive(server, "generate", "A citrus soda", wait=30, cancel_after="5m")
    assert isinstance(answer, GenerationStatus) and answer.status == "completed"
    (request,) = server.requests
    assert request.headers["prefer"] == "wait=30" and request.headers["cancel-after"] == "5m"


def test_wait_returns_the_accepted_job_on_202(drive: Driver) -> None:
    server = completed_server()
    answer = drive(server, "generate", "x", wait=1, cancel_after=90)
    assert isinstance(answer, GenerateAccepted) and answer.id == GID
    assert server.requests[0].headers["cancel-after"] == "90"


def test_without_wait_no_prefer_header_is_sent(drive: Driver) -> None:
    server = completed_server()
    drive(server, "generate", "x")
    assert "prefer" not in server.requests[0].headers and "cancel-after" not in server.requests[0].headers


def test_webhook_deadline_and_reference_path_go_into_the_body(drive: Driver, tmp_path: Path) -> None:
    image = tmp_path / "product.png"
    image.write_bytes(png_bytes())
    server = completed_server()
    drive(
        server,
        "generate",
        "x",
        webhook="https://hooks.example.com/scenechain",
        webhook_events=["started", "completed"],
        deadline=120,
        reference=image,
        reference_strength=0.4,
    )
    body = json.loads(server.requests[0].content)
    assert body["webhook_url"] == "https://hooks.example.com/scenechain"
    assert body["webhook_events"] == ["started", "completed"]
    assert body["deadline_s"] == 120 and body["reference_strength"] == 0.4
    assert base64.b64decode(body["reference_image"]) == png_bytes()


def test_reference_bytes_are_sent_too_and_bad_webhook_events_fail_before_sending(drive: Driver) -> None:
    server = completed_server()
    drive(server, "generate", "x", reference=png_bytes())
    assert base64.b64decode(json.loads(server.requests[0].content)["reference_image"]) == png_bytes()
    with pytest.raises(Exception, match="webhook_events"):
        drive(server, "generate", "x", webhook_events=["finished"])
    assert len(server.requests) == 1


def test_cli_flags_send_every_job_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "product.png"
    image.write_bytes(png_bytes())
    server = completed_server(**{"POST /api/generate": httpx.Response(200, json=status_doc("completed"))})
    code, out = run_cli(
        [
            "generate",
            "A citrus soda",
            "--wait",
            "45",
            "--deadline",
            "10m",
            "--webhook",
            "https://hooks.example.com/x",
            "--webhook-events",
            "scene_completed, completed",
            "--reference",
            str(image),
            "--reference-strength",
            "0.3",
        ],
        server,
        monkeypatch,
    )
    assert code == 0
    request = server.requests[0]
    assert request.headers["prefer"] == "wait=45" and request.headers["cancel-after"] == "10m"
    body = json.loads(request.content)
    assert body["webhook_url"] == "https://hooks.example.com/x"
    assert body["webhook_events"] == ["scene_completed", "completed"]
    assert body["reference_strength"] == 0.3 and base64.b64decode(body["reference_image"]) == png_bytes()
    # finished within the wait: printed at once, no event stream or polling needed
    assert len(server.requests) == 1 and "completed" in out


def test_cli_status_shows_queue_position_eta_and_cancel_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    queued = {**status_doc("queued"), "queue_position": 3, "eta_s": 42.0}
    cancelled = {**status_doc("cancelled"), "cancel_reason": "deadline"}
    server = completed_server(**{f"GET /api/status/{GID}": [httpx.Response(200, json=queued)]})
    _code, out = run_cli(["status", GID], server, monkeypatch)
    assert "queue position: 3" in out and "~42s" in out
    server = completed_server(**{f"GET /api/status/{GID}": [httpx.Response(200, json=cancelled)]})
    _code, out = run_cli(["status", GID], server, monkeypatch)
    assert "cancelled by: deadline" in out


def test_webhook_secret_fetch_rotate_and_deliveries(drive: Driver) -> None:
    secret = {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "created_at": "2026-12-04T12:00:00Z"}
    deliveries = {
        "generation_id": GID,
        "items": [
            {
                "id": f"msg_{GID}_completed",
                "event": "completed",
                "url": "https://hooks.example.com/x",
                "status": "delivered",
                "attempts": 3,
                "next_attempt_at": None,
                "created_at": "2026-12-04T12:00:00Z",
                "delivered_at": "2026-12-04T12:00:09Z",
                "last_status_code": 204,
                "last_error": None,
            }
        ],
    }
    server = completed_server(
        **{
            "GET /api/webhooks/secret": httpx.Response(200, json=secret),
            "POST /api/webhooks/secret/rotate": httpx.Response(200, json={**secret, "secret": "whsec_new"}),
            f"GET /api/generations/{GID}/webhooks": httpx.Response(200, json=deliveries),
        }
    )
    assert drive(server, "webhook_secret").secret == secret["secret"]
    assert drive(server, "webhook_secret", rotate=True).secret == "whsec_new"
    listed = drive(server, "webhook_deliveries", GID)
    assert listed.items[0].attempts == 3 and listed.items[0].status == "delivered"
    assert [(r.method, r.url.path) for r in server.requests] == [
        ("GET", "/api/webhooks/secret"),
        ("POST", "/api/webhooks/secret/rotate"),
        ("GET", f"/api/generations/{GID}/webhooks"),
    ]


def test_cli_webhook_secret_prints_it_and_rotates_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = {"secret": "whsec_abc", "created_at": "2026-12-04T12:00:00Z"}
    server = completed_server(
        **{
            "GET /api/webhooks/secret": httpx.Response(200, json=secret),
            "POST /api/webhooks/secret/rotate": httpx.Response(
                200, json={**secret, "secret": "whsec_rotated"}
            ),
        }
    )
    code, out = run_cli(["webhook-secret"], server, monkeypatch)
    assert code == 0 and out.strip() == "whsec_abc"
    code, out = run_cli(["webhook-secret", "--rotate"], server, monkeypatch)
    assert code == 0 and out.strip() == "whsec_rotated"


def test_upload_sends_the_raw_file_and_parses_the_id(drive: Driver, tmp_path: Path) -> None:
    image = tmp_path / "product.png"
    image.write_bytes(png_bytes())
    uploaded = {
        "id": "img_" + "a" * 32,
        "width": 16,
        "height": 16,
        "format": "png",
        "bytes": len(png_bytes()),
    }
    server = completed_server(**{"POST /api/uploads": httpx.Response(201, json=uploaded)})
    answer = drive(server, "upload", image)
    assert answer.id == uploaded["id"] and answer.width == 16
    (request,) = server.requests
    assert request.content == png_bytes() and request.headers["content-type"] == "application/octet-stream"


def test_cli_reference_takes_an_upload_id_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    server = completed_server(**{"POST /api/generate": httpx.Response(200, json=status_doc("completed"))})
    upload_id = "img_" + "b" * 32
    code, _out = run_cli(["generate", "x", "--wait", "5", "--reference", upload_id], server, monkeypatch)
    assert code == 0 and json.loads(server.requests[0].content)["reference_image"] == upload_id
