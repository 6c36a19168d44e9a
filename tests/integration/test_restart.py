"""The whole app dies mid-generation (Ray and all); a fresh cluster on the same store resumes it.

The module runs its own local Ray cluster (not the session's ``live_app``): the tiny app on a temp
output dir (SQLite DB inside) with a 5 s lease, and an advanced 3-scene generation. Two deaths:

- abrupt, while scene 2 generates (its trace half-written): the Director's process is SIGKILLed,
  then ``ray.shutdown()`` with no ``serve.shutdown()``; nothing ran the Director's teardown, its
  lease just goes stale;
- graceful, while scene 2 is enhanced: ``serve.shutdown()`` (the Director cancels its tasks
  without marking them cancelled), then ``ray.shutdown()``.

Then a fresh Ray + Serve on the same store: the new Director's recovery pass claims the stale lease
and finishes the generation without redoing a committed scene (same PNG bytes and timings), with
one DB row, each scene announced once, and one complete trace folder per scene.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from conftest import FINISHED, tiny_config_args
from infra import free_port, wait_for

from api.auth import mint_token
from serve.config import AppArgs
from store.db import Database, GenerationRecord
from store.events import SqlEventStore

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

APP = "scenechain"
USER = "alice"
NUM_SCENES = 3
REQUEST = {
    "prompt": "An ad for a thermos",
    "num_scenes": NUM_SCENES,
    "seed": 31,
    "use_advanced_image_generation": True,
    "advanced_image_num_variations": 2,
    "advanced_image_max_enhancement_iterations": 1,
    "advanced_image_quality_threshold": 0,  # no below-threshold warnings: any warning is a degradation
}
# What every scene's trace folder holds (plus the enhancer's per-iteration files).
CONTRACT_FILES = {
    "00_original_prompt.txt",
    "final_enhanced_prompt.txt",
    "prompt_trace_summary.json",
    "image_1.png",
    "image_2.png",
    "quality_scores.json",
}
ITERATION_FILE = re.compile(r"^\d\d_agent[12]_iteration_1\.txt$")


class RestartableApp:
    """The tiny app on a local Ray cluster that the test can kill and start again on one store."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        # A short lease and recovery period: the new Director claims the dead one's work quickly.
        self.args = {
            **tiny_config_args(),
            "output_dir": str(output_dir),
            "lease_timeout_s": 5,
            "recover_interval_s": 2,
        }
        self.database_url = AppArgs.model_validate(self.args).resolved_database_url()
        self.base_url = ""

    @property
    def running(self) -> bool:
        import ray  # noqa: PLC0415

        return ray.is_initialized()

    def start(self) -> None:
        """A fresh Ray cluster (logical GPU, like the session app), Serve, and the app on the store."""
        import ray  # noqa: PLC0415
        from ray import serve  # noqa: PLC0415

        from serve.app import build_app  # noqa: PLC0415

        port = free_port()
        ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(self.args), name=APP, route_prefix="/")
        self.base_url = f"http://127.0.0.1:{port}"

    def crash(self) -> None:
        """Kill the whole cluster abruptly: no Serve shutdown, no replica ever runs its teardown.

        The Director's process is SIGKILLed first, so it stops where it is (``ray.shutdown()``
        alone takes a second or two, enough for it to finish the scene it was on).
        """
        import ray  # noqa: PLC0415
        from ray import serve  # noqa: PLC0415

        pids = _actor_pids()
        os.kill(pids["Director"], signal.SIGKILL)
        ray.shutdown()
        # The driver's cached Serve client points into the dead cluster; the next start must not reuse it.
        serve.context._set_global_client(None)
        _wait_gone(pids)

    def stop_gracefully(self) -> None:
        """Shut Serve down (replicas run their teardown), then Ray."""
        import ray  # noqa: PLC0415
        from ray import serve  # noqa: PLC0415

        pids = _actor_pids()
        serve.shutdown()
        ray.shutdown()
        _wait_gone(pids)

    def client(self) -> httpx.Client:
        token = mint_token(AppArgs.from_env().jwt, USER)
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def record(self, generation_id: str) -> GenerationRecord:
        db = Database(self.database_url, migrate=False)
        try:
            return db.get(generation_id)
        finally:
            db.close()


def _actor_pids() -> dict[str, int]:
    """Process id of each live actor of the cluster (controller, proxy, every replica), by name;
    a replica by its deployment's name (one replica each here)."""
    from ray._private import state  # noqa: PLC0415

    pids = {}
    for actor in state.actors().values():
        if actor.get("State") == "ALIVE":
            name = actor.get("Name") or actor["ActorID"]
            if name.startswith(f"SERVE_REPLICA::{APP}#"):
                name = name.split("#")[1]
            pids[name] = int(actor["Pid"])
    return pids


def _wait_gone(pids: dict[str, int], timeout_s: float = 60) -> None:
    """Wait until the old cluster's actor processes have exited: none may write to the store any more."""

    def gone() -> bool:
        alive = []
        for pid in pids.values():
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        return not alive

    wait_for(gone, timeout_s, f"the old cluster's actor processes {pids} to exit", poll_s=0.2)


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableApp]:
    """One store for the module; the cluster is started by the tests (and always torn down here)."""
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    if ray.is_initialized():  # one driver per process: conftest runs the live_app tests after this module
        pytest.fail("a Ray driver is already running in this process; run this module before live_app")
    app = RestartableApp(tmp_path_factory.mktemp("restart-output"))
    try:
        yield app
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()


def submit_and_wait(app: RestartableApp, until: Callable[[dict[str, Any]], bool]) -> str:
    """Start the generation (and the cluster, if none runs); return its id once ``until(status)``."""
    if not app.running:
        app.start()
    with app.client() as client:
        answer = client.post("/api/generate", json=REQUEST)
        assert answer.status_code == 202, answer.text
        generation_id = answer.json()["id"]

        def reached() -> dict[str, Any] | None:
            status = client.get(f"/api/status/{generation_id}").json()
            return status if until(status) or status["status"] in FINISHED else None

        status = wait_for(reached, 300, "the generation to get past scene 1", poll_s=0.02)
    assert status["status"] == "running", status
    return generation_id


def committed_at_death(
    app: RestartableApp, generation_id: str
) -> tuple[int, dict[int, bytes], dict[str, Any]]:
    """What the store holds while no cluster runs: still running (a shutdown is not a cancel), at
    least scene 1 committed, not the last; returns the committed count, their PNGs and timings."""
    record = app.record(generation_id)
    assert record.status == "running", (record.status, record.stage)
    assert 1 <= record.scenes_done < NUM_SCENES, (record.scenes_done, record.stage)
    images = app.output_dir / "generations" / generation_id
    pngs = {n: (images / f"scene_{n}.png").read_bytes() for n in range(1, record.scenes_done + 1)}
    return record.scenes_done, pngs, record.timings


def restart_and_wait(app: RestartableApp, generation_id: str) -> dict[str, Any]:
    app.start()
    with app.client() as client:

        def finished() -> dict[str, Any] | None:
            status = client.get(f"/api/status/{generation_id}").json()
            return status if status["status"] in FINISHED else None

        return wait_for(finished, 300, "the resumed generation to finish", poll_s=0.5)


def assert_resumed_without_redoing(
    app: RestartableApp,
    generation_id: str,
    final: dict[str, Any],
    committed: tuple[int, dict[int, bytes], dict[str, Any]],
) -> None:
    done, pngs, timings = committed
    # 1. the status document: completed, committed scenes kept as they were, the chain intact
    assert final["status"] == "completed", final
    assert final["error"] is None
    assert final["progress"]["scenes_done"] == NUM_SCENES
    for n in range(1, done + 1):
        assert final["timings"][f"scene_{n}"] == timings[f"scene_{n}"], n  # not redone
    assert [scene["index"] for scene in final["scenes"]] == [1, 2, 3]
    assert [scene["reference_from"] for scene in final["scenes"]] == [None, 1, 2]
    assert sorted(final["image_quality_scores"]) == ["scene_1", "scene_2", "scene_3"]
    # the death degraded nothing (the tiny planner LLM always falls back: that warning comes first)
    assert all(warning.startswith("planner:") for warning in final["warnings"]), final["warnings"]
    images = app.output_dir / "generations" / generation_id
    for n, png in pngs.items():
        assert (images / f"scene_{n}.png").read_bytes() == png, n
    assert sorted(p.name for p in images.iterdir()) == ["scene_1.png", "scene_2.png", "scene_3.png"]

    # 2. the DB: one row for the id
    db = Database(app.database_url, migrate=False)
    try:
        rows, _total = db.list_for_user(USER, limit=100, offset=0)
        assert [row.id for row in rows].count(generation_id) == 1
        events = SqlEventStore(db.engine).read(generation_id)
    finally:
        db.close()

    # 3. the traces: one folder per scene, each complete and matching its kept image; nothing
    # half-written left behind by the scene that was cut off
    traces = app.output_dir / "reference_image_traces" / generation_id
    assert sorted(p.name for p in traces.iterdir()) == ["scene_1", "scene_2", "scene_3"]
    for scene in final["scenes"]:
        n = scene["index"]
        names = {p.name for p in (traces / f"scene_{n}").iterdir()}
        assert names >= CONTRACT_FILES, (n, sorted(CONTRACT_FILES - names))
        extra = {name for name in names - CONTRACT_FILES if not ITERATION_FILE.match(name)}
        assert not extra, (n, sorted(extra))
        quality = json.loads((traces / f"scene_{n}" / "quality_scores.json").read_text())
        assert quality["scene"] == n and quality["seeds"] == scene["seeds"], (n, quality)
        assert quality["best_index"] == scene["best_index"], n
        kept = (images / f"scene_{n}.png").read_bytes()
        assert (traces / f"scene_{n}" / f"image_{scene['best_index']}.png").read_bytes() == kept, n
    assert not list(app.output_dir.rglob("*.tmp")), list(app.output_dir.rglob("*.tmp"))

    # 4. the event log: nothing announced twice, the resumed scenes and the end announced
    announced = [event.scene for event in events if event.type == "scene_done"]
    assert len(announced) == len(set(announced)), announced
    assert set(range(done + 1, NUM_SCENES + 1)) <= set(announced), announced
    assert [event.data["status"] for event in events if event.type == "done"] == ["completed"]
    # A death between a scene's row commit and its events is caught up by the resumed run.
    assert set(announced) == set(range(1, NUM_SCENES + 1)), announced


def scene_2_under_way(status: dict[str, Any]) -> bool:
    """Scene 1 committed and scene 2 past its enhancement (its trace half-written), or later."""
    stage = status["progress"]["stage"]
    return status["progress"]["scenes_done"] >= 2 or stage in ("scene 2: generating", "scene 2: scoring")


def test_whole_cluster_killed_abruptly_resumes_on_restart(restartable: RestartableApp) -> None:
    generation_id = submit_and_wait(restartable, scene_2_under_way)

    restartable.crash()
    committed = committed_at_death(restartable, generation_id)

    final = restart_and_wait(restartable, generation_id)
    assert_resumed_without_redoing(restartable, generation_id, final, committed)


def test_serve_shut_down_gracefully_resumes_on_restart(restartable: RestartableApp) -> None:
    generation_id = submit_and_wait(restartable, lambda status: status["progress"]["scenes_done"] >= 1)

    restartable.stop_gracefully()
    committed = committed_at_death(restartable, generation_id)

    final = restart_and_wait(restartable, generation_id)
    assert_resumed_without_redoing(restartable, generation_id, final, committed)
