"""scenechain's own Prometheus metrics, next to Ray Serve's built-in ones; plain functions to call.

Inside a Ray worker the metrics are ``ray.serve.metrics`` objects (a replica's records carry its
``deployment``, ``replica`` and ``application`` tags) and Ray's metrics agent exports them with
Serve's own (``ray_serve_*``) on every node's metrics export port (``ray start
--metrics-export-port=8080``; see docs/deploy.md), prefixed ``ray_``. Outside Ray (unit tests, the
CLI) every call is a no-op, so cores can call these without caring where they run.

Exported names (Prometheus adds ``_total``/``_bucket``/... suffixes):

- ``ray_scenechain_requests``             HTTP requests by route, method and status code
- ``ray_scenechain_request_latency_s``    HTTP request latency by route
- ``ray_scenechain_rejected_requests``    requests refused by backpressure (503), by reason
- ``ray_scenechain_stage_latency_s``      per-stage latency: plan, enhance, generate, score, ... by stage
- ``ray_scenechain_queue_depth``          generations queued or running, by queue ('director')
- ``ray_scenechain_generations``          finished generations by status
- ``ray_scenechain_score``                quality scores (0-100) by scorer (and ``overall``)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scenechain.protocol import SceneQuality

logger = logging.getLogger(__name__)

MetricKind = Literal["counter", "gauge", "histogram"]

# Seconds: from a fast HTTP call to a long LLM enhancement loop.
LATENCY_BOUNDARIES_S: list[float] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]
# Quality scores are 0-100 (the aggregate and each normalised scorer).
SCORE_BOUNDARIES: list[float] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: data, so the catalogue is visible in one place."""

    name: str
    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...]
    boundaries: tuple[float, ...] = ()


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("scenechain_requests", "counter", "HTTP requests answered.", ("route", "method", "code")),
        MetricSpec(
            "scenechain_request_latency_s",
            "histogram",
            "HTTP request latency in seconds.",
            ("route",),
            tuple(LATENCY_BOUNDARIES_S),
        ),
        MetricSpec(
            "scenechain_rejected_requests",
            "counter",
            "Requests refused with 503 (backpressure) or 429 (per-user quota).",
            ("reason",),
        ),
        MetricSpec(
            "scenechain_stage_latency_s",
            "histogram",
            "Latency of one pipeline stage in seconds.",
            ("stage",),
            tuple(LATENCY_BOUNDARIES_S),
        ),
        MetricSpec(
            "scenechain_queue_depth", "gauge", "Generations in a queue (waiting or running).", ("queue",)
        ),
        MetricSpec(
            "scenechain_io_retries",
            "counter",
            "Storage/DB calls of the Director that failed transiently: retried, or exhausted.",
            ("target", "outcome"),
        ),
        MetricSpec(
            "scenechain_generations", "counter", "Generations finished, by final status.", ("status",)
        ),
        MetricSpec(
            "scenechain_score",
            "histogram",
            "Image quality scores (0-100) by scorer; 'overall' is the weighted aggregate.",
            ("scorer",),
            tuple(SCORE_BOUNDARIES),
        ),
    )
}


class _NoopMetric:
    """Stands in for a metric outside Ray."""

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        return None

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        return None

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        return None


_NOOP = _NoopMetric()
_created: dict[str, Any] = {}
_lock = threading.Lock()


def _ray_ready() -> bool:
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        return False
    return bool(ray.is_initialized())


def _metric(name: str) -> Any:
    """The process's metric object for ``name`` (created on first use inside Ray), else a no-op."""
    metric = _created.get(name)
    if metric is not None:
        return metric
    if not _ray_ready():
        return _NOOP  # not cached: the process may join Ray later (tests, the CLI)
    spec = METRICS[name]
    with _lock:
        if name in _created:
            return _created[name]
        from ray.serve import metrics as serve_metrics  # noqa: PLC0415

        # Ray annotates tag_keys as Tuple[str] (one element); any tuple of names is accepted.
        options: dict[str, Any] = {"description": spec.description, "tag_keys": spec.tag_keys}
        if spec.kind == "counter":
            metric = serve_metrics.Counter(spec.name, **options)
        elif spec.kind == "gauge":
            metric = serve_metrics.Gauge(spec.name, **options)
        else:
            metric = serve_metrics.Histogram(spec.name, boundaries=list(spec.boundaries), **options)
        _created[name] = metric
        return metric


def _safely(record: Any, *args: Any, **kwargs: Any) -> None:
    # A metrics failure must never fail a request or a generation.
    try:
        record(*args, **kwargs)
    except Exception:
        logger.debug("metric update failed", exc_info=True)


# -- the functions callers use --------------------------------------------------------------------


def record_request(route: str, method: str, code: int, seconds: float) -> None:
    """One answered HTTP request (``route`` is the route template, not the raw path: bounded tags)."""
    _safely(
        _metric("scenechain_requests").inc, 1.0, tags={"route": route, "method": method, "code": str(code)}
    )
    _safely(_metric("scenechain_request_latency_s").observe, max(seconds, 0.0), tags={"route": route})


def record_rejection(reason: str) -> None:
    """One request refused: 503 ('queue_full', 'deployment_backpressure') or 429 ('quota_concurrent', 'quota_rate')."""
    _safely(_metric("scenechain_rejected_requests").inc, 1.0, tags={"reason": reason})


def record_io_retry(target: str, outcome: str) -> None:
    """A transient storage/DB failure (``target``): ``outcome`` 'retried' or 'exhausted'."""
    _safely(_metric("scenechain_io_retries").inc, 1.0, tags={"target": target, "outcome": outcome})


def observe_stage(stage: str, seconds: float) -> None:
    """Latency of one pipeline stage ('plan', 'enhance', 'generate', 'score', 'scene', 'generation')."""
    _safely(_metric("scenechain_stage_latency_s").observe, max(seconds, 0.0), tags={"stage": stage})


def set_queue_depth(queue: str, depth: int) -> None:
    """Current depth of a queue (e.g. 'director': generations queued or running in this Director replica)."""
    _safely(_metric("scenechain_queue_depth").set, float(depth), tags={"queue": queue})


def record_generation(status: str) -> None:
    """One generation reached a final status ('completed', 'failed', 'cancelled')."""
    _safely(_metric("scenechain_generations").inc, 1.0, tags={"status": status})


def observe_score(scorer: str, score: float) -> None:
    """One 0-100 quality score of ``scorer`` ('pickscore', ..., or 'overall')."""
    _safely(_metric("scenechain_score").observe, min(max(float(score), 0.0), 100.0), tags={"scorer": scorer})


def observe_scores(scores: dict[str, float | None]) -> None:
    """Several scores at once ({scorer: score}); None values (a failed scorer) are skipped."""
    for scorer, score in scores.items():
        if score is not None:
            observe_score(scorer, score)


def observe_generation(
    status: str, timings: dict[str, Any], quality_scores: Mapping[str, SceneQuality] | None = None
) -> None:
    """Everything a finished generation tells: its status, stage latencies and quality scores.

    Reads the Director's own ``timings`` (``plan_s``, ``total_s``, ``scene_N: {enhance_s,
    generate_s, score_s, total_s}``) and ``image_quality_scores`` (``scene_N: {per_image: [...]}``)
    documents, so the Director needs one call at the end of a generation.
    """
    record_generation(status)
    if isinstance(timings.get("plan_s"), int | float):
        observe_stage("plan", timings["plan_s"])
    if isinstance(timings.get("total_s"), int | float):
        observe_stage("generation", timings["total_s"])
    for key, scene in timings.items():
        if not key.startswith("scene_") or not isinstance(scene, dict):
            continue
        for name, seconds in scene.items():
            if name.endswith("_s") and isinstance(seconds, int | float):
                observe_stage("scene" if name == "total_s" else name.removesuffix("_s"), seconds)
    for scene in (quality_scores or {}).values():
        for image in scene.per_image:
            observe_scores({name: value for name, value in image.model_dump().items() if value is not None})


__all__ = [
    "LATENCY_BOUNDARIES_S",
    "METRICS",
    "SCORE_BOUNDARIES",
    "MetricSpec",
    "observe_generation",
    "observe_score",
    "observe_scores",
    "observe_stage",
    "record_generation",
    "record_rejection",
    "record_request",
    "set_queue_depth",
]
