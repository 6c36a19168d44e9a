"""The real app over real HTTP, start to finish: simple and advanced mode, files on disk, auth, handle."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = pytest.mark.integration

SIMPLE = {"prompt": "A 30-second ad for a solar-powered bike light", "num_scenes": 2, "seed": 11}
ADVANCED = {
    "prompt": "An ad for a reusable coffee cup",
    "num_scenes": 2,
    "seed": 21,
    "use_advanced_image_generation": True,
    "advanced_image_num_variations": 2,
    "advanced_image_max_enhancement_iterations": 1,
    "advanced_image_quality_threshold": 99,
}
TRACE_FILES_ADVANCED = [
    "00_original_prompt.txt",
    "01_agent1_iteration_1.txt",
    "02_agent2_iteration_1.txt",
    "final_enhanced_prompt.txt",
    "image_1.png",
    "image_2.png",
    "prompt_trace_summary.json",
    "quality_scores.json",
]


@pytest.fixture(scope="module")
def runs(live_app: LiveApp) -> dict[str, dict[str, Any]]:
    """Three generations submitted together (they run concurrently), awaited to the end."""
    with live_app.client() as client:
        ids = {}
        for name, body in (("simple", SIMPLE), ("simple_again", SIMPLE), ("advanced", ADVANCED)):
            answer = client.post("/api/generate", json=body)
            assert answer.status_code == 202, answer.text
            accepted = answer.json()
            assert accepted["status"] == "queued"
            assert accepted["status_url"] == f"/api/status/{accepted['id']}"
            ids[name] = accepted["id"]
        return {name: live_app.wait(client, gid) for name, gid in ids.items()}


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def trace_dir(live_app: LiveApp, generation_id: str, scene: int):
    return live_app.output_dir / "reference_image_traces" / generation_id / f"scene_{scene}"


def test_simple_mode_end_to_end(live_app: LiveApp, runs: dict[str, dict[str, Any]]) -> None:
    status = runs["simple"]
    assert status["status"] == "completed", status
    assert status["progress"] == {"scenes_done": 2, "scenes_total": 2, "stage": "completed"}
    assert status["advanced_image_generation_used"] is False
    plan = status["storyboard_plan"]
    assert len(plan["scenes"]) == 2 and plan["advanced_image_generation_used"] is False
    assert plan["advanced_image_settings"] == {
        "quality_threshold": 30.0,
        "num_variations": 4,
        "max_enhancement_iterations": 4,
    }
    assert status["image_quality_scores"] == {}
    scenes = status["scenes"]
    assert [scene["index"] for scene in scenes] == [1, 2]
    assert [scene["reference_from"] for scene in scenes] == [None, 1]  # the chain
    assert all(scene["enhanced_prompt"] is None and scene["seeds"] == [11] for scene in scenes)
    with live_app.client() as client:
        for scene in scenes:
            image = client.get(scene["image_url"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert png_size(image.content) == (64, 64)
            on_disk = live_app.output_dir / "generations" / status["id"] / f"scene_{scene['index']}.png"
            assert on_disk.read_bytes() == image.content
    files = sorted(p.name for p in trace_dir(live_app, status["id"], 1).iterdir())
    assert files == ["00_original_prompt.txt", "image_1.png"]


def test_advanced_mode_end_to_end(live_app: LiveApp, runs: dict[str, dict[str, Any]]) -> None:
    status = runs["advanced"]
    gid = status["id"]
    assert status["status"] == "completed", status
    assert status["advanced_image_generation_used"] is True
    assert status["storyboard_plan"]["advanced_image_settings"] == {
        "quality_threshold": 99.0,
        "num_variations": 2,
        "max_enhancement_iterations": 1,
    }
    assert [scene["reference_from"] for scene in status["scenes"]] == [None, 1]
    with live_app.client() as client:
        for n in (1, 2):
            quality = status["image_quality_scores"][f"scene_{n}"]
            assert quality["seeds"] == [21, 22]  # base + k, recorded
            assert len(quality["per_image"]) == 2
            assert sorted(quality["scorers_used"]) == ["aesthetic", "clipscore", "pickscore", "vqa"]
            for image_scores in quality["per_image"]:
                for key in ("pickscore", "clip", "vqa", "aesthetic", "overall"):
                    assert 0.0 <= image_scores[key] <= 100.0
            overall = [image_scores["overall"] for image_scores in quality["per_image"]]
            assert quality["best_index"] == overall.index(max(overall)) + 1
            assert quality["below_threshold"] is True  # threshold 99 on random-weight scorers
            directory = trace_dir(live_app, gid, n)
            assert sorted(p.name for p in directory.iterdir()) == TRACE_FILES_ADVANCED
            scores_file = json.loads((directory / "quality_scores.json").read_text())
            assert scores_file["best_index"] == quality["best_index"] and scores_file["seeds"] == [21, 22]
            summary = json.loads((directory / "prompt_trace_summary.json").read_text())
            assert summary["original_prompt"] == (directory / "00_original_prompt.txt").read_text().strip()
            final = (directory / "final_enhanced_prompt.txt").read_text().strip()
            assert status["scenes"][n - 1]["enhanced_prompt"] == final
            # the kept image is the best variation, also served over HTTP
            kept = client.get(f"/api/generations/{gid}/scenes/{n}/image").content
            best = client.get(f"/api/generations/{gid}/scenes/{n}/variations/{quality['best_index']}")
            assert best.status_code == 200 and best.content == kept
            assert (directory / f"image_{quality['best_index']}.png").read_bytes() == kept
    assert sum("below the quality threshold 99" in warning for warning in status["warnings"]) == 2


def test_same_request_and_seed_reproduce_the_same_images(
    live_app: LiveApp, runs: dict[str, dict[str, Any]]
) -> None:
    first, second = runs["simple"], runs["simple_again"]
    assert first["id"] != second["id"]
    assert first["storyboard_plan"]["scenes"] == second["storyboard_plan"]["scenes"]
    with live_app.client() as client:
        for n in (1, 2):
            a = client.get(f"/api/generations/{first['id']}/scenes/{n}/image").content
            b = client.get(f"/api/generations/{second['id']}/scenes/{n}/image").content
            assert a == b


def test_auth_ownership_and_listing(live_app: LiveApp, runs: dict[str, dict[str, Any]]) -> None:
    gid = runs["simple"]["id"]
    with httpx.Client(base_url=live_app.base_url, timeout=30) as anonymous:
        assert anonymous.post("/api/generate", json=SIMPLE).status_code == 401
        assert anonymous.get(f"/api/status/{gid}").status_code == 401
        assert anonymous.get("/healthz").json()["status"] == "ok"
        assert anonymous.get("/docs").status_code == 200
    with live_app.client("mallory") as mallory:
        assert mallory.get(f"/api/status/{gid}").status_code == 404
        assert mallory.get(f"/api/generations/{gid}/scenes/1/image").status_code == 404
        assert mallory.get("/api/generations").json()["total"] == 0
    with live_app.client() as alice:
        page = alice.get("/api/generations", params={"limit": 2}).json()
        assert page["total"] >= 3 and len(page["items"]) == 2
        invalid = alice.post("/api/generate", json={**SIMPLE, "advanced_image_num_variations": 12})
        assert invalid.status_code == 422
        assert "advanced_image_num_variations" in invalid.text and "2 to 8" in invalid.text
        assert alice.post("/api/generate", json={**SIMPLE, "style": "noir"}).status_code == 422


def test_python_handle_submits_and_awaits_with_the_same_request_model(live_app: LiveApp) -> None:
    from ray import serve  # noqa: PLC0415
    from scenechain.protocol import GenerateRequest, GenerationStatus  # noqa: PLC0415

    handle = serve.get_app_handle("scenechain")
    request = GenerateRequest(prompt="A poster for a night market", num_scenes=1, seed=5)
    status: GenerationStatus = handle.generate.remote(request, user="carol", timeout_s=300).result(
        timeout_s=330
    )
    assert status.status == "completed" and len(status.scenes) == 1 and status.seed == 5
    accepted = handle.submit.remote(request, user="carol").result(timeout_s=60)
    again = handle.wait.remote(accepted.id, user="carol", timeout_s=300).result(timeout_s=330)
    assert again.status == "completed"
    with live_app.client("carol") as carol:
        assert carol.get(f"/api/status/{status.id}").json()["status"] == "completed"
        first = carol.get(f"/api/generations/{status.id}/scenes/1/image").content
        second = carol.get(f"/api/generations/{again.id}/scenes/1/image").content
        assert first == second
