"""The scorer deployment splits a merged batch back per request without bending the math, and its
health check probes a loaded model that sat idle (a scorer that failed to load stays healthy)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import io
import math
import time
from typing import Any

import pytest
from PIL import Image

from deployments.scorer import HEALTH_PROBE_IDLE_S, ScorerDeployment, _slice_extra
from director.ports import ScoreRequest
from scorers import ScorerError
from weights.forge import default_model_dir
from weights.profiles import ModelSpec, get_profile


def softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_sliced_softmax_is_the_softmax_over_that_requests_images() -> None:
    raw = [21.0, 19.5, 22.3, 18.0, 20.1]  # two requests merged: images 0-1 and 2-4
    merged = {"softmax": softmax(raw), "cosine": [0.1, 0.2, 0.3, 0.4, 0.5], "model": "x"}
    first = _slice_extra(merged, 0, 2, len(raw))
    second = _slice_extra(merged, 2, 5, len(raw))
    assert first["softmax"] == pytest.approx(softmax(raw[0:2]))
    assert second["softmax"] == pytest.approx(softmax(raw[2:5]))
    assert second["cosine"] == [0.3, 0.4, 0.5]
    assert first["model"] == "x"


# ---- health ---------------------------------------------------------------------------------------


def _deployment(name: str = "clipscore", **options: Any) -> Any:
    """The deployment's class (no Ray) on the tiny profile's forged model, options merged over it."""
    spec = get_profile("tiny").model(name)
    spec = ModelSpec(source=spec.source, options={**spec.options, **options})
    settings = {"name": name, "spec": spec.model_dump(), "model_dir": str(default_model_dir())}
    return ScorerDeployment.func_or_class(settings)


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _idle(deployment: Any) -> None:
    deployment._last_ok = time.monotonic() - HEALTH_PROBE_IDLE_S - 1


def test_a_scorer_that_failed_to_load_stays_healthy_and_answers_with_its_error() -> None:
    deployment = _deployment(fail_on_load="disk full")
    assert deployment.core is None and "disk full" in deployment.load_error
    _idle(deployment)
    asyncio.run(deployment.check_health())  # the Director degrades around it; no restart
    outcome = asyncio.run(deployment.score(ScoreRequest(prompt="a cat", images=[_png((0, 0, 0))])))
    assert outcome.result is None and "clipscore unavailable" in (outcome.error or "")


def test_an_injected_scoring_failure_stays_healthy() -> None:
    deployment = _deployment(fail_with="CUDA out of memory")
    _idle(deployment)
    asyncio.run(deployment.check_health())
    [outcome] = deployment._score_grouped([ScoreRequest(prompt="a cat", images=[_png((0, 0, 0))])])
    assert "CUDA out of memory" in (outcome.error or "")


def test_an_idle_model_is_probed_and_fails_health_when_it_cannot_score() -> None:
    deployment = _deployment()
    # 1. idle and working: the probe scores an 8x8 image and counts as a success
    _idle(deployment)
    asyncio.run(deployment.check_health())
    assert time.monotonic() - deployment._last_ok < 5
    # 2. the weights are gone (moved to the meta device): idle, the probe fails health
    bundle = deployment.core.bundle
    deployment.core.bundle = dataclasses.replace(bundle, model=copy.deepcopy(bundle.model).to("meta"))
    _idle(deployment)
    with pytest.raises(ScorerError, match="clipscore failed"):
        asyncio.run(deployment.check_health())
    # 3. a call that scored recently spares the probe; a failed call does not count as one
    [failed] = deployment._score_grouped([ScoreRequest(prompt="a cat", images=[_png((9, 9, 9))])])
    assert failed.error is not None
    with pytest.raises(ScorerError):
        asyncio.run(deployment.check_health())
    deployment.core.bundle = bundle
    [scored] = deployment._score_grouped([ScoreRequest(prompt="a cat", images=[_png((9, 9, 9))])])
    assert scored.result is not None
    deployment.core.bundle = dataclasses.replace(bundle, model=copy.deepcopy(bundle.model).to("meta"))
    asyncio.run(deployment.check_health())  # recent success: not probed
