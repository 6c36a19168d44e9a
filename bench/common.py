"""Shared benchmark plumbing: timing, machine facts, JSON + PNG results, the Markdown summary.

Every benchmark compares two or more variants measured side by side in the same run and reports
their ratio; absolute seconds are recorded but only ratios are claims.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import secrets
import socket
import statistics
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

DEFAULT_RESULTS_DIR = Path("bench/results")
REPO = Path(__file__).resolve().parents[1]

logger = logging.getLogger(__name__)


class BenchResult(BaseModel):
    """One benchmark's outcome."""

    name: str = Field(description="File stem of the result (e.g. 'batching_generator').")
    title: str = Field(description="One-line human title.")
    unit: str = Field(description="Unit of the samples (e.g. 'seconds per scene').")
    samples: dict[str, list[float]] = Field(description="Variant -> raw measurements.")
    summary: dict[str, float] = Field(description="Derived figures: medians, percentiles, ratios.")
    headline: str = Field(description="The ratio that matters, in words.")
    goal: str | None = Field(default=None, description="The target, in words, when the issue set one.")
    goal_met: bool | None = Field(default=None, description="Whether the goal was met on this machine.")
    params: dict[str, Any] = Field(default_factory=dict, description="Settings the run used.")
    machine: dict[str, Any] = Field(default_factory=dict, description="Where it ran.")
    date: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def machine_info() -> dict[str, Any]:
    """Versions and hardware of this run."""
    import os  # noqa: PLC0415

    import torch  # noqa: PLC0415

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    for package in ("diffusers", "transformers", "open_clip", "ray"):
        try:
            info[package] = __import__(package).__version__
        except Exception:  # a missing optional package is a fact to record, not an error
            info[package] = None
    return info


def load_generator(profile_name: str, model_dir: Path | None = None) -> Any:
    """The profile's diffusion core, as every benchmark loads it."""
    from generator import DiffusionGenerator  # noqa: PLC0415
    from weights.profiles import get_profile  # noqa: PLC0415

    profile = get_profile(profile_name)
    return DiffusionGenerator(
        profile.model("diffusion"),
        profile.generation,
        device=profile.device,
        dtype=profile.dtype,
        model_dir=model_dir,
    )


def time_calls(call: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    """Median of the samples."""
    return statistics.median(values)


def write_result(result: BenchResult, out_dir: Path = DEFAULT_RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``<name>.json`` and a ``<name>.png`` bar plot (median with p5–p95 whiskers)."""
    # the JSON first: a long run's figures survive a missing plotting library
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{result.name}.json"
    json_path.write_text(json.dumps(result.model_dump(), indent=2))
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(result.samples)
    medians = [median(result.samples[n]) for n in names]
    lows = [m - percentile(result.samples[n], 5) for n, m in zip(names, medians, strict=True)]
    highs = [percentile(result.samples[n], 95) - m for n, m in zip(names, medians, strict=True)]
    width = min(16.0, max(4.0, 1.6 * len(names) + 2))
    figure, axes = plt.subplots(figsize=(width, 4.2 if len(names) > 6 else 3.6))
    axes.bar(names, medians, yerr=[lows, highs], capsize=4, color="#4878a8")
    axes.set_ylabel(textwrap.fill(result.unit, 40), fontsize=8)
    if len(names) > 6:  # long component names: slanted so they do not overlap
        axes.tick_params(axis="x", labelrotation=35, labelsize=8)
        for label in axes.get_xticklabels():
            label.set_horizontalalignment("right")
    chars = int(width * 13)  # roughly what fits across the figure at font size 8
    axes.set_title(
        f"{textwrap.fill(result.title, chars)}\n{textwrap.fill(result.headline, chars)}", fontsize=8
    )
    figure.tight_layout()
    png_path = out_dir / f"{result.name}.png"
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return json_path, png_path


def summary_table(results: list[BenchResult]) -> str:
    """Markdown table: one row per benchmark with its headline, goal and the day it ran."""
    lines = ["| benchmark | headline | goal | met | run |", "| --- | --- | --- | --- | --- |"]
    for result in results:
        met = {True: "yes", False: "no", None: "—"}[result.goal_met]
        lines.append(
            f"| {result.title} | {result.headline} | {result.goal or '—'} | {met} | {result.date[:10]} |"
        )
    return "\n".join(lines)


def load_results(out_dir: Path) -> list[BenchResult]:
    """Every ``BenchResult`` JSON in ``out_dir`` (files that are not one are skipped), by file name."""
    results = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            results.append(BenchResult.model_validate_json(path.read_text()))
        except (ValidationError, ValueError) as exc:
            logger.warning("skipping %s in the summary: not a benchmark result (%s)", path, exc)
    return results


def merge_results(earlier: list[BenchResult], fresh: list[BenchResult]) -> list[BenchResult]:
    """Earlier results with the fresh ones replacing those of the same name, ordered by name."""
    by_name = {result.name: result for result in earlier}
    by_name.update({result.name: result for result in fresh})
    return [by_name[name] for name in sorted(by_name)]


def write_summary(results: list[BenchResult], out_dir: Path = DEFAULT_RESULTS_DIR, command: str = "") -> Path:
    """Write ``SUMMARY.md``: this run's results merged with the other results already in ``out_dir``.

    The header names this run (date, machine, command); every row keeps the date of its own run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = results[0].machine if results else machine_info()
    rows = merge_results(load_results(out_dir), results)
    fresh = sorted(result.name for result in results)
    header = [
        "# Benchmark results",
        "",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {machine.get('gpu') or 'CPU only'}, {machine.get('cpus')} cores, {machine.get('platform')}",
        f"- versions: torch {machine.get('torch')}, diffusers {machine.get('diffusers')}, ray {machine.get('ray')}",
        f"- command: `{command}` (ran: {', '.join(fresh)}; other rows are earlier runs, see their JSON)"
        if command
        else "",
        "",
    ]
    path = out_dir / "SUMMARY.md"
    path.write_text("\n".join(header) + "\n" + summary_table(rows) + "\n")
    return path


# -- a local Ray cluster with one Serve app (benchmarks that need the real graph) ------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_jwt_secret() -> str:
    """The HS256 secret a benchmark's app serves with: $SCENECHAIN_JWT_SECRET, else a random one for
    this run (the shipped configs hold no secret, and build_app refuses to start without one)."""
    return os.environ.get("SCENECHAIN_JWT_SECRET") or secrets.token_urlsafe(48)


def tiny_config_args() -> dict[str, Any]:
    """The app args of ``configs/tiny.yaml`` (so a benchmark runs the shipped CPU config)."""
    import yaml  # noqa: PLC0415

    document = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    return dict(document["applications"][0]["args"])


@contextlib.contextmanager
def local_serve_app(
    build: Callable[[], Any], *, num_cpus: int = 4, num_gpus: int = 1, app_name: str = "scenechain"
) -> Iterator[str]:
    """Local Ray (logical GPUs so fractional-GPU replicas place) running ``build()``; yields its base URL.

    ``build`` returns the bound Serve application (called after ``ray.init``). Serve and Ray are
    always shut down, also when the deploy fails.
    """
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    port = free_port()
    ray.init(
        address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build(), name=app_name, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
