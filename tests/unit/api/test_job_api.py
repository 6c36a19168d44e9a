"""The job API over HTTP with the real Director core in-process (fake model ports):
queue position and ETA, ``Prefer: wait``, ``Cancel-After`` / ``deadline_s``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import FakePorts, RecordingDirector, slow_ports
from fastapi.testclient import TestClient

from api.auth import mint_token
from api.ingress import IngressService, create_api
from director.core import DirectorCore
from serve.config import AppArgs
from store.storage import Storage


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}"}


class CoreDirector:
    """The ingress's Director client over a real ``DirectorCore`` running in the app's event loop."""

    def __init__(self, core: DirectorCore) -> None:
        self.core = core

    async def submit(self, generation_id: str) -> None:
        self.core.start(generation_id)

    async def cancel(self, generation_id: str) -> bool:
        return await self.core.cancel(generation_id)


def make_app(tmp_path: Path, director: object | None = None, ports: FakePorts | None = None):
    args = AppArgs(output_dir=str(tmp_path / "out"), max_concurrent_generations=1)
    service = IngressService(args.ingress_settings(), RecordingDirector())
    if director is None:
        core = DirectorCore(service.db, Storage(str(tmp_path / "out")), ports or FakePorts())
        director = CoreDirector(core)
    service.director = director  # type: ignore[assignment]
    return service


@pytest.fixture
def recorded(tmp_path: Path):
    service = make_app(tmp_path, director=RecordingDirector())
    with TestClient(create_api(service)) as client:
        yield client, service
    service.db.close()


def test_queue_position_counts_down_as_earlier_jobs_start_and_finish(recorded) -> None:
    client, service = recorded
    ids = [
        client.post("/api/generate", json={"prompt": f"ad {n}", "num_scenes": 1}, headers=auth()).json()["id"]
        for n in range(3)
    ]

    def positions() -> list[int | None]:
        return [client.get(f"/api/status/{gid}", headers=auth()).json()["queue_position"] for gid in ids]

    assert positions() == [1, 2, 3]
    service.db.update(ids[0], status="running", stage="planning")
    assert positions() == [None, 1, 2]
    service.db.update(ids[1], status="running", stage="planning")
    service.db.update(ids[0], status="completed", stage="completed")
    assert positions() == [None, None, 1]
    # another user's queued jobs count too (one queue), but their ids stay invisible
    other = client.post("/api/generate", json={"prompt": "x"}, headers=auth("bob")).json()["id"]
    assert client.get(f"/api/status/{other}", headers=auth()).status_code == 404
    assert client.get(f"/api/status/{other}", headers=auth("bob")).json()["queue_position"] == 2


def test_eta_is_null_without_history_and_estimated_from_recent_timings(recorded) -> None:
    client, service = recorded
    first = client.post("/api/generate", json={"prompt": "a", "num_scenes": 2}, headers=auth()).json()["id"]
    assert client.get(f"/api/status/{first}", headers=auth()).json()["eta_s"] is None
    # one finished generation of the same mode: 2 s planning + 2 scenes of 4 s
    service.db.update(
        first,
        status="completed",
        stage="completed",
        scenes_done=2,
        finished_at=service.db.get(first).created_at,
        timings={"plan_s": 2.0, "total_s": 10.0},
    )
    running = client.post("/api/generate", json={"prompt": "b", "num_scenes": 3}, headers=auth()).json()["id"]
    queued = client.post("/api/generate", json={"prompt": "c", "num_scenes": 1}, headers=auth()).json()["id"]
    service.db.update(running, status="running", stage="scene 2: generating", scenes_done=1)
    status = client.get(f"/api/status/{running}", headers=auth()).json()
    assert status["eta_s"] == pytest.approx(2 + 2 * 4)  # not planned yet: plan + 2 scenes left
    # queued behind one running job with capacity 1: one turn of a 1-scene job, then its own run
    status = client.get(f"/api/status/{queued}", headers=auth()).json()
    assert status["queue_position"] == 1 and status["eta_s"] == pytest.approx((2 + 4) + (2 + 4))
    # advanced mode has its own history: none yet
    advanced = client.post(
        "/api/generate", json={"prompt": "d", "use_advanced_image_generation": True}, headers=auth()
    ).json()["id"]
    assert client.get(f"/api/status/{advanced}", headers=auth()).json()["eta_s"] is None
    done = client.get(f"/api/status/{first}", headers=auth()).json()
    assert done["eta_s"] is None and done["queue_position"] is None


def test_prefer_wait_returns_the_finished_status_for_a_short_job(tmp_path: Path) -> None:
    service = make_app(tmp_path)
    with TestClient(create_api(service)) as client:
        answer = client.post(
            "/api/generate",
            json={"prompt": "a coffee ad", "num_scenes": 2},
            headers={**auth(), "Prefer": "wait=20"},
        )
        assert answer.status_code == 200 and answer.headers["Preference-Applied"] == "wait=20"
        body = answer.json()
        assert body["status"] == "completed" and len(body["scenes"]) == 2
        # the same job as a 202 would have named
        assert client.get(f"/api/status/{body['id']}", headers=auth()).json()["status"] == "completed"
    service.db.close()


def test_prefer_wait_answers_202_when_the_job_outlasts_the_wait(tmp_path: Path) -> None:
    service = make_app(tmp_path, ports=slow_ports(1.0))
    with TestClient(create_api(service)) as client:
        started = time.monotonic()
        answer = client.post(
            "/api/generate", json={"prompt": "x", "num_scenes": 4}, headers={**auth(), "Prefer": "wait=1"}
        )
        waited = time.monotonic() - started
        assert answer.status_code == 202 and answer.json()["status"] == "queued"
        assert 1.0 <= waited < 3.5  # it did wait, and not for the whole job
        gid = answer.json()["id"]
        assert client.get(f"/api/status/{gid}", headers=auth()).json()["status"] == "running"
        client.post(f"/api/generations/{gid}/cancel", headers=auth())
    service.db.close()


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=abc", "respond-async", "wait=1.5"])
def test_unsupported_prefer_is_422_naming_the_rule_and_queues_nothing(recorded, prefer: str) -> None:
    client, service = recorded
    answer = client.post("/api/generate", json={"prompt": "x"}, headers={**auth(), "Prefer": prefer})
    assert (
        answer.status_code == 422
        and "Prefer" in answer.json()["detail"]
        and "wait=N" in answer.json()["detail"]
    )
    assert service.db.count_unfinished() == 0


def test_cancel_after_sets_the_deadline_and_the_earlier_of_header_and_body_holds(recorded) -> None:
    client, _service = recorded
    gid = client.post("/api/generate", json={"prompt": "x"}, headers={**auth(), "Cancel-After": "5m"}).json()[
        "id"
    ]
    status = client.get(f"/api/status/{gid}", headers=auth()).json()
    from datetime import datetime  # noqa: PLC0415

    created = datetime.fromisoformat(status["created_at"])
    assert datetime.fromisoformat(status["deadline_at"]) - created == timedelta(minutes=5)
    gid = client.post(
        "/api/generate", json={"prompt": "x", "deadline_s": 60}, headers={**auth(), "Cancel-After": "2h"}
    ).json()["id"]
    status = client.get(f"/api/status/{gid}", headers=auth()).json()
    assert datetime.fromisoformat(status["deadline_at"]) - datetime.fromisoformat(
        status["created_at"]
    ) == timedelta(seconds=60)
    for bad in ("0", "1h30m", "-5", "soon", "5 m"):
        answer = client.post("/api/generate", json={"prompt": "x"}, headers={**auth(), "Cancel-After": bad})
        assert answer.status_code == 422 and "Cancel-After" in answer.json()["detail"], bad


def test_a_deadline_cancels_a_running_job_with_reason_deadline(tmp_path: Path) -> None:
    service = make_app(tmp_path, ports=slow_ports(0.6))
    with TestClient(create_api(service)) as client:
        gid = client.post(
            "/api/generate", json={"prompt": "x", "num_scenes": 6}, headers={**auth(), "Cancel-After": "2"}
        ).json()["id"]
        deadline = time.monotonic() + 30
        while (status := client.get(f"/api/status/{gid}", headers=auth()).json())["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert status["status"] == "cancelled" and status["cancel_reason"] == "deadline"
        assert 0 < status["progress"]["scenes_done"] < 6  # finished scenes are kept
        assert len(status["scenes"]) == status["progress"]["scenes_done"]
        assert status["eta_s"] is None and status["queue_position"] is None
    service.db.close()
