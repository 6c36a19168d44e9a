"""The Serve graph against the naive baseline: throughput and per-scene latency of advanced generations.

Both sides use the same profile, models and settings. The baseline runs generations one after another
in this process (``bench.baseline.NaivePipeline``); the graph gets ``c`` generations submitted at once
over real HTTP to the Serve app on local Ray (logical GPUs so the fractional-GPU replicas place).
"""

from __future__ import annotations

import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from scenechain.protocol import FINISHED_STATUSES

from bench.common import BenchResult, bench_jwt_secret, machine_info, percentile

BRIEF = "A 30-second ad for a solar-powered e-bike: city commute at dawn, mountain trail, sunset rooftop."
FINISHED = FINISHED_STATUSES  # the protocol's terminal statuses


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_baseline(
    profile: str, generations: int, num_scenes: int, variations: int, iterations: int
) -> dict[str, Any]:
    from bench.baseline import NaivePipeline  # noqa: PLC0415

    pipeline = NaivePipeline(profile)
    pipeline.run(BRIEF, num_scenes=1, variations=variations, max_iterations=iterations)  # warm-up
    scene_seconds, wall = pipeline.run_many(
        BRIEF, generations, num_scenes=num_scenes, variations=variations, max_iterations=iterations
    )
    return {"scenes_per_min": 60 * generations * num_scenes / wall, "scene_seconds": scene_seconds}


def _submit_and_wait(client: httpx.Client, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    accepted = client.post("/api/generate", json=body)
    accepted.raise_for_status()
    generation_id = accepted.json()["id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get(f"/api/status/{generation_id}").json()
        if status["status"] in FINISHED:
            status["wall_seconds"] = time.perf_counter() - started
            return status
        time.sleep(0.25)
    raise TimeoutError(f"generation {generation_id} did not finish in {timeout_s}s")


def _run_graph(
    profile: str, concurrencies: list[int], num_scenes: int, variations: int, iterations: int, num_cpus: int
) -> dict[int, dict[str, Any]]:
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    from api.auth import mint_token  # noqa: PLC0415
    from serve.app import build_app  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415

    output_dir = tempfile.mkdtemp(prefix="scenechain-bench-")
    # One Director replica runs every submitted generation at once (the app's default is 4), so the
    # LLM and generator batches can fill up to c.
    args = AppArgs(
        profile=profile,
        output_dir=output_dir,
        max_concurrent_generations=max(concurrencies),
        jwt={"secret": bench_jwt_secret()},
    )
    port = _free_port()
    ray.init(address="local", num_cpus=num_cpus, num_gpus=1, include_dashboard=False)
    results: dict[int, dict[str, Any]] = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="scenechain", route_prefix="/")
        headers = {"Authorization": f"Bearer {mint_token(args.jwt, 'bench')}"}
        body = {
            "prompt": BRIEF,
            "use_advanced_image_generation": True,
            "advanced_image_num_variations": variations,
            "advanced_image_max_enhancement_iterations": iterations,
            "num_scenes": num_scenes,
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as client:
            _submit_and_wait(client, {**body, "num_scenes": 1}, timeout_s=900)  # warm-up: load every replica
            for concurrency in concurrencies:
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    statuses = list(
                        pool.map(
                            lambda k: _submit_and_wait(client, {**body, "seed": k}, timeout_s=1800),
                            range(concurrency),
                        )
                    )
                wall = time.perf_counter() - started
                completed = [s for s in statuses if s["status"] == "completed"]
                results[concurrency] = {
                    "scenes_per_min": 60 * len(completed) * num_scenes / wall,
                    # Per-scene latency as a user sees it: the generation's wall time over its scenes.
                    "scene_seconds": [s["wall_seconds"] / num_scenes for s in completed],
                    "failed": len(statuses) - len(completed),
                }
    finally:
        serve.shutdown()
        ray.shutdown()
    return results


def bench_graph_vs_baseline(
    profile: str = "tiny",
    concurrencies: tuple[int, ...] = (1, 4, 8),
    num_scenes: int = 2,
    variations: int = 4,
    iterations: int = 2,
    baseline_generations: int = 2,
    num_cpus: int = 4,
) -> BenchResult:
    """Scenes/min and p50/p95 seconds per scene: baseline vs graph at each concurrency."""
    baseline = _run_baseline(profile, baseline_generations, num_scenes, variations, iterations)
    graph = _run_graph(profile, list(concurrencies), num_scenes, variations, iterations, num_cpus)
    samples = {"baseline": baseline["scene_seconds"]}
    summary: dict[str, float] = {
        "baseline_scenes_per_min": baseline["scenes_per_min"],
        "baseline_p50_s": percentile(baseline["scene_seconds"], 50),
        "baseline_p95_s": percentile(baseline["scene_seconds"], 95),
    }
    for concurrency, figures in graph.items():
        samples[f"graph c={concurrency}"] = figures["scene_seconds"]
        summary[f"graph_c{concurrency}_scenes_per_min"] = figures["scenes_per_min"]
        summary[f"graph_c{concurrency}_p50_s"] = percentile(figures["scene_seconds"], 50)
        summary[f"graph_c{concurrency}_p95_s"] = percentile(figures["scene_seconds"], 95)
        summary[f"graph_c{concurrency}_failed"] = figures["failed"]
        summary[f"throughput_ratio_c{concurrency}"] = figures["scenes_per_min"] / baseline["scenes_per_min"]
    top = max(concurrencies)
    ratio = summary[f"throughput_ratio_c{top}"]
    import torch  # noqa: PLC0415

    on_gpu = torch.cuda.is_available()
    return BenchResult(
        name="graph_vs_baseline",
        title=f"Serve graph vs naive pipeline, advanced mode ({profile})",
        unit="seconds per scene (lower is better)",
        samples=samples,
        summary=summary,
        headline=f"graph throughput at c={top} is {ratio:.2f}x the baseline",
        goal=">= 4x baseline throughput at c=8 on a GPU",
        goal_met=(ratio >= 4) if on_gpu else None,
        params={
            "profile": profile,
            "concurrencies": list(concurrencies),
            "num_scenes": num_scenes,
            "variations": variations,
            "iterations": iterations,
            "ray_num_cpus": num_cpus,
        },
        machine=machine_info(),
    )
