"""Per-user quotas on POST /api/generate: 429 + Retry-After, counted in the real DB, per user."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import RecordingDirector
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import update

from api.auth import mint_token
from api.ingress import IngressService, create_api
from api.quotas import QuotaExceeded, QuotaSettings, check_quotas
from serve.config import AppArgs
from store import metrics
from store.db import Generation

BODY = {"prompt": "A 30-second ad for a solar bike light", "num_scenes": 2, "seed": 3}
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def headers(user: str = "alice", key: str | None = None) -> dict[str, str]:
    result = {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}"}
    if key is not None:
        result["Idempotency-Key"] = key
    return result


Api = tuple[TestClient, RecordingDirector, IngressService]


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    services: list[IngressService] = []
    clients: list[TestClient] = []

    def build(**args: Any) -> Api:
        director = RecordingDirector()
        service = IngressService(
            AppArgs(output_dir=str(tmp_path / "out"), **args).ingress_settings(), director
        )
        client = TestClient(create_api(service)).__enter__()
        services.append(service)
        clients.append(client)
        return client, director, service

    yield build
    for client in clients:
        client.__exit__(None, None, None)
    for service in services:
        service.db.close()


def backdate(service: IngressService, generation_id: str, seconds_ago: float) -> None:
    """Move a generation's created_at into the past (the rate window is over created_at)."""
    with service.db.engine.begin() as connection:
        connection.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(created_at=datetime.now(UTC) - timedelta(seconds=seconds_ago))
        )


def submit(client: TestClient, user: str = "alice", key: str | None = None) -> Any:
    return client.post("/api/generate", json=BODY, headers=headers(user, key))


# -- the decision, without HTTP -------------------------------------------------------------------


def test_quotas_are_off_by_default_and_reject_nonsense_values() -> None:
    quotas = AppArgs().quotas
    assert quotas.max_active_per_user is None and quotas.rate_limit_per_user is None
    check_quotas(quotas, active=10_000, recent=[NOW] * 10_000, now=NOW, concurrent_retry_after_s=5)
    for bad in ({"max_active_per_user": 0}, {"rate_limit_per_user": -1}, {"rate_window_s": 0}, {"x": 1}):
        with pytest.raises(ValidationError):
            AppArgs.model_validate({"quotas": bad})


def test_concurrency_limit_decides_on_the_unfinished_count() -> None:
    quotas = QuotaSettings(max_active_per_user=2)
    check_quotas(quotas, active=1, recent=[], now=NOW, concurrent_retry_after_s=7)
    with pytest.raises(QuotaExceeded) as refused:
        check_quotas(quotas, active=2, recent=[], now=NOW, concurrent_retry_after_s=7)
    assert (refused.value.reason, refused.value.retry_after_s, refused.value.limit) == ("concurrent", 7, 2)
    assert "limit of 2 queued or running" in str(refused.value)


def test_rate_limit_retry_after_is_when_the_window_has_room_again() -> None:
    quotas = QuotaSettings(rate_limit_per_user=2, rate_window_s=60)
    recent = [NOW - timedelta(seconds=45.5), NOW - timedelta(seconds=5)]
    check_quotas(quotas, active=0, recent=recent[1:], now=NOW, concurrent_retry_after_s=7)
    with pytest.raises(QuotaExceeded) as refused:
        check_quotas(quotas, active=0, recent=list(reversed(recent)), now=NOW, concurrent_retry_after_s=7)
    # the oldest leaves the window 60 - 45.5 = 14.5 s from now: rounded up
    assert (refused.value.reason, refused.value.retry_after_s) == ("rate", 15)
    assert "2 generations per 60 s" in str(refused.value) and "retry in 15 s" in str(refused.value)
    # overshoot (e.g. two replicas raced): enough must leave to make room for one more
    four = [NOW - timedelta(seconds=s) for s in (50, 40, 30, 20)]
    with pytest.raises(QuotaExceeded) as refused:
        check_quotas(quotas, active=0, recent=four, now=NOW, concurrent_retry_after_s=7)
    assert refused.value.retry_after_s == 30  # the one from 30 s ago must leave: 60 - 30
    # never below one second
    with pytest.raises(QuotaExceeded) as refused:
        check_quotas(
            quotas, active=0, recent=[NOW - timedelta(seconds=60)] * 2, now=NOW, concurrent_retry_after_s=7
        )
    assert refused.value.retry_after_s == 1


def test_when_both_limits_are_hit_the_longer_wait_is_reported() -> None:
    quotas = QuotaSettings(max_active_per_user=1, rate_limit_per_user=1, rate_window_s=60)
    with pytest.raises(QuotaExceeded) as refused:
        check_quotas(
            quotas, active=1, recent=[NOW - timedelta(seconds=10)], now=NOW, concurrent_retry_after_s=5
        )
    assert (refused.value.reason, refused.value.retry_after_s) == ("rate", 50)
    with pytest.raises(QuotaExceeded) as refused:
        check_quotas(
            quotas, active=1, recent=[NOW - timedelta(seconds=58)], now=NOW, concurrent_retry_after_s=5
        )
    assert (refused.value.reason, refused.value.retry_after_s) == ("concurrent", 5)


def test_the_exception_survives_pickling_for_handle_callers() -> None:
    original = QuotaExceeded("per-user rate limit ...", 12, "rate", 3)
    copy = pickle.loads(pickle.dumps(original))
    assert (str(copy), copy.retry_after_s, copy.reason, copy.limit) == (str(original), 12, "rate", 3)
    assert not isinstance(copy, ValueError)  # the route maps ValueError to 422


# -- through the real app and DB --------------------------------------------------------------------


def test_concurrent_limit_is_a_429_with_retry_after_and_a_body_that_says_why(make_api, monkeypatch) -> None:
    rejections: list[str] = []
    monkeypatch.setattr(metrics, "record_rejection", rejections.append)
    client, director, _service = make_api(quotas={"max_active_per_user": 2}, retry_after_s=7)
    assert submit(client).status_code == submit(client).status_code == 202
    refused = submit(client)
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "7"
    body = refused.json()
    assert body["error"] == "quota_exceeded" and body["reason"] == "concurrent" and body["retry_after_s"] == 7
    assert "limit of 2 queued or running generations" in body["detail"] and "7 s" in body["detail"]
    assert len(director.submitted) == 2
    assert client.get("/api/generations", headers=headers()).json()["total"] == 2
    assert rejections == ["quota_concurrent"]


@pytest.mark.parametrize("final_status", ["completed", "failed", "cancelled"])
def test_a_finished_generation_frees_its_slot(make_api, final_status: str) -> None:
    client, _director, service = make_api(quotas={"max_active_per_user": 1})
    first = submit(client).json()["id"]
    assert submit(client).status_code == 429
    service.db.update(first, status="running")
    assert submit(client).status_code == 429  # running still counts
    service.db.update(first, status=final_status)
    assert submit(client).status_code == 202


def test_rate_limit_is_a_429_whose_retry_after_is_when_the_oldest_leaves_the_window(make_api) -> None:
    client, _director, service = make_api(quotas={"rate_limit_per_user": 2, "rate_window_s": 60})
    first = submit(client).json()["id"]
    second = submit(client).json()["id"]
    backdate(service, first, 50)
    backdate(service, second, 10)
    refused = submit(client)
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["reason"] == "rate" and body["retry_after_s"] == 10
    assert refused.headers["Retry-After"] == "10"
    assert "rate limit of 2 generations per 60 s" in body["detail"]
    # finishing does not matter to a rate limit; leaving the window does
    service.db.update(first, status="completed")
    assert submit(client).status_code == 429
    backdate(service, first, 61)
    assert submit(client).status_code == 202
    assert submit(client).status_code == 429


def test_one_users_quota_does_not_touch_another(make_api) -> None:
    client, director, _service = make_api(quotas={"max_active_per_user": 1, "rate_limit_per_user": 1})
    assert submit(client, "alice").status_code == 202
    assert submit(client, "alice").status_code == 429
    assert submit(client, "bob").status_code == 202
    assert submit(client, "bob").status_code == 429
    assert len(director.submitted) == 2


def test_an_idempotent_retry_is_not_a_new_submission(make_api) -> None:
    client, director, _service = make_api(quotas={"max_active_per_user": 1, "rate_limit_per_user": 1})
    first = submit(client, key="order-42")
    retry = submit(client, key="order-42")
    assert first.status_code == retry.status_code == 202, retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert submit(client, key="order-43").status_code == 429  # a new key is a new submission
    assert director.submitted == [first.json()["id"]]


def test_without_quotas_a_user_may_submit_freely(make_api) -> None:
    client, director, _service = make_api()
    assert all(submit(client).status_code == 202 for _ in range(12))
    assert len(director.submitted) == 12


def test_quota_429_and_queue_full_503_work_side_by_side(make_api) -> None:
    client, _director, _service = make_api(
        quotas={"max_active_per_user": 1}, max_queued_generations=2, retry_after_s=9
    )
    assert submit(client, "alice").status_code == 202
    assert submit(client, "alice").status_code == 429  # alice's own limit comes first
    assert submit(client, "bob").status_code == 202
    full = submit(client, "carol")  # carol is within her quota, but the service is full
    assert full.status_code == 503, full.text
    assert full.json()["error"] == "overloaded" and full.headers["Retry-After"] == "9"


def test_limits_hold_across_ingress_replicas_sharing_the_db(make_api) -> None:
    replica_1, _d1, _s1 = make_api(quotas={"max_active_per_user": 1})
    replica_2, _d2, _s2 = make_api(quotas={"max_active_per_user": 1})
    assert submit(replica_1).status_code == 202
    assert submit(replica_2).status_code == 429


def test_handle_callers_get_quota_exceeded(make_api) -> None:
    _client, _director, service = make_api(quotas={"rate_limit_per_user": 1, "rate_window_s": 30})
    asyncio.run(service.submit(BODY, "alice"))
    with pytest.raises(QuotaExceeded) as refused:
        asyncio.run(service.submit(BODY, "alice"))
    assert refused.value.reason == "rate" and 29 <= refused.value.retry_after_s <= 30


def test_the_openapi_documents_429_and_503(make_api) -> None:
    client, _director, _service = make_api()
    responses = client.get("/openapi.json").json()["paths"]["/api/generate"]["post"]["responses"]
    assert {"202", "422", "429", "503"} <= set(responses)


def test_the_documented_yaml_example_is_valid_app_args() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    section = doc.split("## Quotas and backpressure", 1)[1]
    example = section.split("```yaml", 1)[1].split("```", 1)[0]
    args = AppArgs.model_validate(yaml.safe_load(example)["applications"][0]["args"])
    assert args.quotas == QuotaSettings(max_active_per_user=3, rate_limit_per_user=20, rate_window_s=3600)
    assert args.max_queued_generations == 200
