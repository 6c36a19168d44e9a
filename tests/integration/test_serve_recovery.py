"""Replicas die mid-generation on the session's app; the generation still completes.

- A Director replica dies: its replacement resumes from the last committed scene.
- A scorer replica dies while scoring a scene: that scene is scored by the other three (reweighted,
  with the reason), Serve replaces the replica, and the next scene has all four scorers again.
"""

from __future__ import annotations

import io
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = pytest.mark.integration


def _replica_actor(deployment: str) -> tuple[str, Any]:
    """(name, handle) of the one live replica actor of ``deployment`` in the scenechain app."""
    import ray  # noqa: PLC0415

    names = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith(f"SERVE_REPLICA::scenechain#{deployment}#")
    ]
    assert len(names) == 1, names
    return names[0], ray.get_actor(names[0], namespace="serve")


def test_killed_director_is_resumed_without_redoing_scenes(live_app: LiveApp) -> None:
    import ray  # noqa: PLC0415

    with live_app.client() as client:
        answer = client.post(
            "/api/generate",
            json={
                "prompt": "An ad for a thermos",
                "num_scenes": 2,
                "seed": 31,
                "use_advanced_image_generation": True,
                "advanced_image_num_variations": 2,
                "advanced_image_max_enhancement_iterations": 1,
            },
        )
        gid = answer.json()["id"]
        deadline = time.monotonic() + 300
        while True:  # wait until scene 1 is committed and scene 2 is under way
            status = client.get(f"/api/status/{gid}").json()
            if status["progress"]["scenes_done"] >= 1 or status["status"] in ("completed", "failed"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status["status"] == "running" and status["progress"]["scenes_done"] == 1, status
        scene_1_image = (live_app.output_dir / "generations" / gid / "scene_1.png").read_bytes()
        scene_1_timing = status["timings"]["scene_1"]

        ray.kill(_replica_actor("Director")[1], no_restart=True)  # Serve replaces the replica
        final = live_app.wait(client, gid, timeout_s=400)

    assert final["status"] == "completed", final
    assert final["progress"]["scenes_done"] == 2
    assert final["timings"]["scene_1"] == scene_1_timing  # scene 1 was not redone
    assert (live_app.output_dir / "generations" / gid / "scene_1.png").read_bytes() == scene_1_image
    assert [scene["reference_from"] for scene in final["scenes"]] == [None, 1]


class ScorerLoad:
    """Keeps a scorer replica busy, so that a scene's call to it waits seconds in the replica (a tiny
    scorer answers in ~0.1 s, too fast to crash it mid-call otherwise).

    More requests are kept outstanding than one ``@serve.batch`` takes: when a batch ends the queue
    is never empty, so a call that arrives is scored in a full batch (seconds), not alone at once.
    """

    def __init__(self, scorer: str, batch_size: int, images_per_request: int = 16) -> None:
        from PIL import Image  # noqa: PLC0415
        from ray import serve  # noqa: PLC0415

        self.handle = serve.get_deployment_handle(f"Scorer_{scorer}", app_name="scenechain")
        buffer = io.BytesIO()
        Image.new("RGB", (1024, 1024), (120, 80, 40)).save(buffer, format="PNG")  # ~5 KB, 3 MB decoded
        self.images = [buffer.getvalue()] * images_per_request
        self.outstanding = batch_size + 4
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(self.outstanding)
        ]

    def _run(self, k: int) -> None:
        from director.ports import ScoreRequest  # noqa: PLC0415

        sent = 0
        while not self.stopping.is_set():
            sent += 1  # a prompt of its own: one model call per request
            request = ScoreRequest(prompt=f"load {k}-{sent}", images=self.images)
            try:
                self.handle.score.remote(request).result(timeout_s=120)
            except Exception:  # noqa: BLE001 - the replica is killed under it; the load just stops
                continue

    def __enter__(self) -> ScorerLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=180)


def _ongoing_requests(replica: Any) -> int:
    """Requests a Serve replica has received and not finished (queued in its batcher included)."""
    import ray  # noqa: PLC0415

    return int(ray.get(replica.get_num_ongoing_requests.remote(), timeout=10))


def test_scorer_replica_killed_while_scoring_degrades_that_scene_only(live_app: LiveApp) -> None:
    import ray  # noqa: PLC0415

    status_codes: list[int] = []
    with live_app.client() as client:

        def status_of(generation_id: str) -> dict[str, Any]:
            answer = client.get(f"/api/status/{generation_id}")
            status_codes.append(answer.status_code)
            return answer.json()

        answer = client.post(
            "/api/generate",
            json={
                "prompt": "An ad for a folding bicycle",
                "num_scenes": 2,
                "seed": 47,
                "use_advanced_image_generation": True,
                "advanced_image_num_variations": 2,
                "advanced_image_max_enhancement_iterations": 1,
                "advanced_image_quality_threshold": 0,  # no below-threshold warnings
            },
        )
        assert answer.status_code == 202, answer.text
        gid = answer.json()["id"]

        # 1. wait for scene 1's enhancement, then keep VQAScore busy until the scene is scored
        deadline = time.monotonic() + 300
        while (status := status_of(gid))["progress"]["stage"] != "scene 1: enhancing":
            assert status["status"] == "running" and time.monotonic() < deadline, status
            time.sleep(0.1)
        killed, replica = _replica_actor("Scorer_vqa")
        with ScorerLoad("vqa", live_app.args["scorer_batch"]["max_batch_size"]) as load:
            while (status := status_of(gid))["progress"]["stage"] != "scene 1: scoring":
                assert status["progress"]["scenes_done"] == 0 and time.monotonic() < deadline, status
                time.sleep(0.01)
            # 2. more requests in the replica than the load sends: the scene's VQAScore call is
            # there, waiting behind a batch of seconds; kill the replica under it
            while _ongoing_requests(replica) <= load.outstanding:
                assert status_of(gid)["progress"]["scenes_done"] == 0, "scene 1 was scored before the kill"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            ray.kill(replica, no_restart=True)
        # 3. the generation goes on: Serve replaces the replica before (or while) scene 2 is scored
        while (status := status_of(gid))["status"] not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        replacement, _ = _replica_actor("Scorer_vqa")

    assert set(status_codes) == {200}, sorted(set(status_codes))
    assert status["status"] == "completed", status
    assert status["progress"]["scenes_done"] == 2
    assert replacement != killed
    # scene 1: VQAScore's call died with its replica; the overall score comes from the other three
    scene_1 = status["image_quality_scores"]["scene_1"]
    assert scene_1["scorers_used"] == ["pickscore", "clipscore", "aesthetic"], scene_1
    assert list(scene_1["scorers_failed"]) == ["vqa"], scene_1
    assert scene_1["scorers_failed"]["vqa"].startswith("ActorDiedError"), scene_1
    assert all(image["vqa"] is None and image["overall"] is not None for image in scene_1["per_image"])
    reweighted = [w for w in status["warnings"] if w.startswith("scene 1: scorer vqa failed (ActorDiedError")]
    assert len(reweighted) == 1 and "overall reweighted from pickscore, clipscore, aesthetic" in reweighted[0]
    # scene 2: the replacement replica scored it; nothing else degraded
    scene_2 = status["image_quality_scores"]["scene_2"]
    assert scene_2["scorers_used"] == ["pickscore", "clipscore", "vqa", "aesthetic"], scene_2
    assert scene_2["scorers_failed"] == {}
    assert not [w for w in status["warnings"] if w.startswith("scene 2")], status["warnings"]
    assert [scene["reference_from"] for scene in status["scenes"]] == [None, 1]
