"""A Director replica dies mid-generation; its replacement resumes from the last committed scene."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = pytest.mark.integration


def _director_actor():
    import ray  # noqa: PLC0415

    names = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if "scenechain" in actor["name"] and "Director" in actor["name"]
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace="serve")


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

        ray.kill(_director_actor(), no_restart=True)  # Serve replaces the replica
        final = live_app.wait(client, gid, timeout_s=400)

    assert final["status"] == "completed", final
    assert final["progress"]["scenes_done"] == 2
    assert final["timings"]["scene_1"] == scene_1_timing  # scene 1 was not redone
    assert (live_app.output_dir / "generations" / gid / "scene_1.png").read_bytes() == scene_1_image
    assert [scene["reference_from"] for scene in final["scenes"]] == [None, 1]
