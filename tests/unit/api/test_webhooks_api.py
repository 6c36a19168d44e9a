"""Webhook routes and submission on a real DB with a fake Director: the per-user secret (fetch,
rotate), the SSRF refusal at submit (422 naming the field), and the subscription a submission records."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import RecordingDirector
from fastapi.testclient import TestClient

from api.auth import mint_token
from api.ingress import IngressService, create_api
from serve.config import AppArgs
from store.webhooks import WebhookStore

PUBLIC_URL = "https://93.184.216.34/hooks/scenechain"  # a literal public address: no DNS in the test


def make_api(tmp_path: Path, **args: object) -> tuple[TestClient, IngressService, RecordingDirector]:
    settings = AppArgs(output_dir=str(tmp_path / "out"), **args).ingress_settings()  # type: ignore[arg-type]
    director = RecordingDirector()
    service = IngressService(settings, director)
    return TestClient(create_api(service)), service, director


@pytest.fixture
def api(tmp_path: Path):
    client, service, director = make_api(tmp_path)
    with client:
        yield client, service, director
    service.db.close()


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}"}


def test_secret_is_per_user_stable_until_rotated(api) -> None:
    client, _, _ = api
    first = client.get("/api/webhooks/secret", headers=auth())
    assert first.status_code == 200
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and first.json()["signature_scheme"] == "v1"
    assert first.headers["cache-control"] == "no-store"
    assert client.get("/api/webhooks/secret", headers=auth()).json()["secret"] == secret
    assert client.get("/api/webhooks/secret", headers=auth("bob")).json()["secret"] != secret
    rotated = client.post("/api/webhooks/secret/rotate", headers=auth())
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, None)
    assert client.get("/api/webhooks/secret", headers=auth()).json()["secret"] == rotated.json()["secret"]
    assert client.get("/api/webhooks/secret").status_code == 401
    assert client.post("/api/webhooks/secret/rotate").status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"webhook_url": "http://127.0.0.1:9000/hook"}, "webhook_url", "loopback"),
        ({"webhook_url": "http://10.0.0.8/hook"}, "webhook_url", "private"),
        ({"webhook_url": "http://169.254.169.254/latest"}, "webhook_url", "link-local"),
        ({"webhook_url": "http://[::1]/hook"}, "webhook_url", "loopback"),
        ({"webhook_url": "gopher://93.184.216.34/"}, "webhook_url", "http:// or https://"),
        ({"webhook_events": ["completed"]}, "webhook_events", "needs a webhook_url"),
        ({"webhook_url": PUBLIC_URL, "webhook_events": []}, "webhook_events", "empty"),
    ],
)
def test_refused_webhooks_are_422_naming_the_field(
    api, body: dict[str, object], field: str, says: str
) -> None:
    client, service, director = api
    answer = client.post("/api/generate", json={"prompt": "an ad", **body}, headers=auth())
    assert answer.status_code == 422
    (issue,) = answer.json()["detail"]
    assert issue["loc"] == ["body", field] and field in issue["msg"] and says in issue["msg"]
    assert director.submitted == []  # nothing recorded, nothing started
    assert service.db.list_for_user("alice", limit=10, offset=0)[1] == 0


def test_unknown_webhook_event_is_422(api) -> None:
    client, _, _ = api
    answer = client.post(
        "/api/generate",
        json={"prompt": "x", "webhook_url": PUBLIC_URL, "webhook_events": ["exploded"]},
        headers=auth(),
    )
    assert answer.status_code == 422 and "webhook_events" in str(answer.json()["detail"])


def test_submission_records_the_subscription_and_the_secret(api) -> None:
    client, service, director = api
    answer = client.post(
        "/api/generate",
        json={"prompt": "an ad", "webhook_url": PUBLIC_URL, "webhook_events": ["started", "completed"]},
        headers=auth(),
    )
    assert answer.status_code == 202
    generation_id = answer.json()["id"]
    assert director.submitted == [generation_id]
    store = WebhookStore(service.db.engine)
    (subscription,) = store.open_subscriptions()
    assert subscription.generation_id == generation_id and subscription.url == PUBLIC_URL
    assert subscription.events == ["started", "completed"] and subscription.user_name == "alice"
    assert store.secret_for("alice") == client.get("/api/webhooks/secret", headers=auth()).json()["secret"]
    # Without webhook_events: the final statuses.
    client.post("/api/generate", json={"prompt": "again", "webhook_url": PUBLIC_URL}, headers=auth())
    assert store.open_subscriptions()[1].events == ["completed", "failed", "cancelled"]
    # Without a webhook_url: no subscription.
    client.post("/api/generate", json={"prompt": "plain"}, headers=auth())
    assert len(store.open_subscriptions()) == 2


def test_loopback_is_allowed_when_the_config_allows_private_addresses(tmp_path: Path) -> None:
    client, service, _ = make_api(tmp_path, webhooks={"allow_private_addresses": True})
    with client:
        answer = client.post(
            "/api/generate", json={"prompt": "x", "webhook_url": "http://127.0.0.1:9/hook"}, headers=auth()
        )
    assert answer.status_code == 202
    service.db.close()


def test_openapi_documents_the_secret_routes(api) -> None:
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    assert {"/api/webhooks/secret", "/api/webhooks/secret/rotate"} <= set(spec["paths"])
    described = spec["components"]["schemas"]["WebhookSecret"]["properties"]
    assert all(field.get("description") for field in described.values())


def test_delivery_record_is_listed_for_the_owner_only(api) -> None:
    client, service, _ = api
    answer = client.post("/api/generate", json={"prompt": "x", "webhook_url": PUBLIC_URL}, headers=auth())
    generation_id = answer.json()["id"]
    WebhookStore(service.db.engine).add_delivery(
        f"msg_{generation_id}_completed",
        generation_id=generation_id,
        user="alice",
        event="completed",
        url=PUBLIC_URL,
        payload="{}",
        seq=3,
    )
    listed = client.get(f"/api/generations/{generation_id}/webhooks", headers=auth())
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["id"] == f"msg_{generation_id}_completed" and item["status"] == "pending"
    assert item["attempts"] == 0 and item["next_attempt_at"] is not None and item["url"] == PUBLIC_URL
    assert client.get(f"/api/generations/{generation_id}/webhooks", headers=auth("bob")).status_code == 404
