"""Degradation over real HTTP, with faults injected through the app config (model_overrides).

The app is redeployed with a failing PickScore and an unavailable LLM (only those deployments and
the enhancer restart), one advanced generation runs, then the healthy config is restored.
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
