"""Degradation and retries over real HTTP, with faults injected through the app config.

Each case redeploys the app with its faults (``model_overrides`` options for models, ``faults`` for
the Director's storage/DB; only the deployments concerned restart), runs one advanced generation,
then restores the healthy config. docs/reliability.md lists every fault and where it is tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = pytest.mark.integration

FAULTS = {
    "pickscore": {"options": {"fail_with": "injected pickscore outage"}},
    "llm": {"options": {"fail": "unavailable"}},
}


@pytest.fixture(scope="module")
def degraded_run(live_app: LiveApp) -> Iterator[dict[str, Any]]:
    live_app.deploy({**live_app.args, "model_overrides": FAULTS})
    try:
        with live_app.client() as client:
            answer = client.post(
                "/api/generate",
                json={
                    "prompt": "An ad for a lightweight rain jacket",
                    "num_scenes": 2,
                    "seed": 3,
                    "use_advanced_image_generation": True,
                    "advanced_image_num_variations": 2,
                    "advanced_image_max_enhancement_iterations": 2,
                    "advanced_image_quality_threshold": 0,
                },
            )
            assert answer.status_code == 202, answer.text
            yield live_app.wait(client, answer.json()["id"])
    finally:
        live_app.deploy(live_app.args)


def test_failing_scorer_and_llm_degrade_but_complete(live_app: LiveApp, degraded_run: dict[str, Any]) -> None:
    status = degraded_run
    assert status["status"] == "completed", status
    warnings = status["warnings"]
    # planner and enhancer fell back to the brief / the original prompt
    assert status["storyboard_plan"]["degraded"] is True
    assert any(w.startswith("planner:") for w in warnings)
    for scene in status["scenes"]:
        assert scene["enhanced_prompt"] == scene["prompt"]
    assert sum("prompt enhancement degraded" in w for w in warnings) == 2
    # PickScore dropped, overall reweighted from the other three
    for n in (1, 2):
        quality = status["image_quality_scores"][f"scene_{n}"]
        assert sorted(quality["scorers_used"]) == ["aesthetic", "clipscore", "vqa"]
        assert "injected pickscore outage" in quality["scorers_failed"]["pickscore"]
        assert all(image["pickscore"] is None for image in quality["per_image"])
        assert len(quality["per_image"]) == 2
    assert sum("scorer pickscore failed" in w and "reweighted" in w for w in warnings) == 2
    # the trace of a degraded enhancement is still complete
    directory = live_app.output_dir / "reference_image_traces" / status["id"] / "scene_1"
    names = {p.name for p in directory.iterdir()}
    assert {"00_original_prompt.txt", "final_enhanced_prompt.txt", "prompt_trace_summary.json"} <= names
    assert {"image_1.png", "image_2.png", "quality_scores.json"} <= names


# The Director's first 3 storage writes fail (retried with short waits), and a pipeline call of more
# than one image runs out of memory (the generator splits it into one call per image).
STORAGE_AND_OOM = {
    "faults": {"storage_write_failures": 3},
    "io_retry": {"attempts": 5, "base_delay_s": 0.05, "max_delay_s": 0.2},
    "model_overrides": {"diffusion": {"options": {"oom_above_images": 1}}},
}


def test_storage_write_failures_are_retried_and_an_oom_batch_is_split(live_app: LiveApp) -> None:
    live_app.deploy({**live_app.args, **STORAGE_AND_OOM})
    try:
        with live_app.client() as client:
            answer = client.post(
                "/api/generate",
                json={
                    "prompt": "An ad for a folding bicycle",
                    "num_scenes": 1,
                    "seed": 11,
                    "use_advanced_image_generation": True,
                    "advanced_image_num_variations": 2,
                    "advanced_image_max_enhancement_iterations": 1,
                    "advanced_image_quality_threshold": 0,
                },
            )
            assert answer.status_code == 202, answer.text
            status = live_app.wait(client, answer.json()["id"])
    finally:
        live_app.deploy(live_app.args)

    assert status["status"] == "completed", status
    assert status["error"] is None
    # retries that succeeded: counted, not user warnings (the images are the same)
    assert status["timings"]["io_retries"] == {"storage": 3}
    assert not any("retried" in w or "memory" in w for w in status["warnings"])
    # two variations, made by two one-image pipeline calls after the two-image call ran out of memory
    scene = status["scenes"][0]
    assert scene["num_variations"] == 2 and len(status["image_quality_scores"]["scene_1"]["per_image"]) == 2
    assert status["timings"]["scene_1"]["generate_calls"] == 2
    gid = status["id"]
    traces = live_app.output_dir / "reference_image_traces" / gid / "scene_1"
    names = {p.name for p in traces.iterdir()}
    assert {"00_original_prompt.txt", "final_enhanced_prompt.txt", "image_1.png", "image_2.png"} <= names
    assert {"quality_scores.json", "prompt_trace_summary.json"} <= names
    assert (live_app.output_dir / "generations" / gid / "scene_1.png").read_bytes().startswith(b"\x89PNG")
