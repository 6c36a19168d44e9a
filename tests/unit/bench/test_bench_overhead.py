"""The overhead benchmark's plain baseline and instant cores (no Ray): real routes, real Director core."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import mint_token
from bench.overhead import (
    ADVANCED,
    SIMPLE,
    create_plain_app,
    instant_generation,
    instant_png,
    overhead_app_args,
    overhead_summary,
)
from generator.core import GenerationRequest
from serve.config import AppArgs


def test_instant_generator_gives_one_png_per_seed() -> None:
    result = instant_generation(GenerationRequest(prompt="p", seeds=[3, 4, 3]))
    assert [image.seed for image in result.images] == [3, 4, 3]
    assert result.images[0].png == result.images[2].png == instant_png(3) != instant_png(4)
    assert result.images[0].png.startswith(b"\x89PNG")


@pytest.mark.parametrize(("kind", "body"), [("simple", SIMPLE), ("advanced", ADVANCED)])
def test_plain_baseline_completes_a_generation(tmp_path: Path, kind: str, body: dict) -> None:
    headers = {"Authorization": f"Bearer {mint_token(AppArgs().jwt, 'overhead')}"}
    with TestClient(create_plain_app(overhead_app_args(str(tmp_path)))) as client:
        accepted = client.post("/api/generate", json={**body, "seed": 5}, headers=headers)
        assert accepted.status_code == 202, accepted.text
        deadline = time.monotonic() + 30
        while True:
            status = client.get(accepted.json()["status_url"], headers=headers).json()
            if status["status"] in ("completed", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert status["status"] == "completed", status
    assert len(status["scenes"]) == 1
    if kind == "advanced":
        assert status["scenes"][0]["num_variations"] == ADVANCED["advanced_image_num_variations"]
        assert status["image_quality_scores"]["scene_1"]["best_index"] == 1  # instant scores favour image 1


def test_overhead_is_graph_p50_minus_plain_p50() -> None:
    figures = {
        "graph": {"simple": {"post_ms": [10.0, 12.0, 14.0]}, "advanced": {}},
        "plain": {"simple": {"post_ms": [2.0, 3.0, 4.0]}, "advanced": {}},
    }
    summary = overhead_summary(figures)
    assert summary["graph_simple_post_ms_p50"] == 12.0
    assert summary["plain_simple_post_ms_p95"] == pytest.approx(3.9)
    assert summary["overhead_simple_post_ms_p50"] == 9.0
    assert "overhead_advanced_post_ms_p50" not in summary
