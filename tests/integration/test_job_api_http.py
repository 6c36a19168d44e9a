"""The job API over real HTTP on the live app (Director capacity 1, so jobs really queue):
queue position counting down, ``Prefer: wait`` (200 vs 202), deadlines of queued and running jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = pytest.mark.integration

FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def one_slot(live_app: LiveApp) -> Iterator[LiveApp]:
    """The live app with one generation at a time (restored afterwards)."""
    live_app.deploy({**live_app.args, "max_concurrent_generations": 1})
    try:
        yield live_app
    finally:
        live_app.deploy(live_app.args)


@pytest.fixture(scope="module")
def queue_run(one_slot: LiveApp) -> dict[str, Any]:
    """A (3 scenes) then B, C (1 scene each) and D (deadline 2 s) queued behind it; C's positions seen."""
    with one_slot.client() as client:

        def submit(body: dict[str, Any]) -> str:
            answer = client.post("/api/generate", json=body)
            assert answer.status_code == 202, answer.text
            return answer.json()["id"]

        ids = {
            "a": submit({"prompt": "A bike light ad", "num_scenes": 3, "seed": 1}),
            "b": submit({"prompt": "A tea ad", "num_scenes": 1, "seed": 2}),
            "c": submit({"prompt": "A shoe ad", "num_scenes": 1, "seed": 3}),
            "d": submit({"prompt": "A watch ad", "num_scenes": 1, "seed": 4, "deadline_s": 2}),
        }
        seen: list[int | None] = []
        etas: list[float | None] = []
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            status = client.get(f"/api/status/{ids['c']}").json()
            if status["status"] == "queued":
                seen.append(status["queue_position"])
                etas.append(status["eta_s"])
            if status["status"] in FINISHED:
                break
            time.sleep(0.3)
        return {
            "seen": seen,
            "etas": etas,
            "final": {name: one_slot.wait(client, gid) for name, gid in ids.items()},
        }


def test_a_queued_jobs_position_counts_down_to_its_start(queue_run: dict[str, Any]) -> None:
    seen = queue_run["seen"]
    assert seen[0] in (2, 3)  # behind B (and A, until A is claimed); D, submitted later, is behind C
    assert 1 in seen  # once B started
    assert seen == sorted(seen, reverse=True)  # never moves back
    # at position 1, A has completed: recent timings exist, so the estimate is a number
    etas_next = [eta for position, eta in zip(seen, queue_run["etas"], strict=True) if position == 1]
    assert etas_next and all(isinstance(eta, float) and eta > 0 for eta in etas_next)
    assert queue_run["final"]["c"]["status"] == "completed"


def test_a_queued_job_past_its_deadline_never_starts(queue_run: dict[str, Any]) -> None:
    d = queue_run["final"]["d"]
    assert d["status"] == "cancelled" and d["cancel_reason"] == "deadline"
    assert d["progress"]["scenes_done"] == 0 and d["storyboard_plan"] is None and d["scenes"] == []
    assert any("never started" in warning for warning in d["warnings"])
    assert d["deadline_at"] is not None
    assert all(queue_run["final"][name]["status"] == "completed" for name in ("a", "b", "c"))


def test_prefer_wait_returns_200_for_a_short_job_and_202_for_a_long_one(
    one_slot: LiveApp, queue_run: dict[str, Any]
) -> None:
    with one_slot.client() as client:
        short = client.post(
            "/api/generate",
            json={"prompt": "A pen ad", "num_scenes": 1, "seed": 5},
            headers={"Prefer": "wait=60"},
        )
        assert short.status_code == 200, short.text
        assert short.headers["preference-applied"] == "wait=60"
        body = short.json()
        assert body["status"] == "completed" and len(body["scenes"]) == 1
        long = client.post(
            "/api/generate",
            json={"prompt": "A car ad", "num_scenes": 8, "seed": 6, "use_advanced_image_generation": True},
            headers={"Prefer": "wait=1"},
        )
        assert long.status_code == 202 and long.json()["status"] == "queued"
        gid = long.json()["id"]
        assert client.get(f"/api/status/{gid}").json()["status"] in ("queued", "running")
        client.post(f"/api/generations/{gid}/cancel")
        assert one_slot.wait(client, gid)["cancel_reason"] == "user"


def test_a_running_job_is_cancelled_at_its_deadline_keeping_finished_scenes(
    one_slot: LiveApp, queue_run: dict[str, Any]
) -> None:
    with one_slot.client() as client:
        answer = client.post(
            "/api/generate",
            json={
                "prompt": "A sofa ad",
                "num_scenes": 8,
                "seed": 7,
                "use_advanced_image_generation": True,
                "advanced_image_num_variations": 2,
                "advanced_image_max_enhancement_iterations": 1,
            },
            headers={"Cancel-After": "6s"},
        )
        assert answer.status_code == 202, answer.text
        status = one_slot.wait(client, answer.json()["id"], timeout_s=300)
    assert status["status"] == "cancelled" and status["cancel_reason"] == "deadline"
    assert status["progress"]["scenes_done"] < 8
    assert any("passed at stage" in warning for warning in status["warnings"])  # it had started
    assert len(status["scenes"]) == status["progress"]["scenes_done"]
    with one_slot.client() as client:
        for scene in status["scenes"]:
            assert client.get(scene["image_url"]).status_code == 200
