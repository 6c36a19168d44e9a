"""The scorer deployment splits a merged batch back per request without bending the math."""

from __future__ import annotations

import math

import pytest

from deployments.scorer import _slice_extra


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
