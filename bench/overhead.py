"""Issue #9 OVERHEAD benchmark: what the ingress + Serve graph add per request, models replaced by
INSTANT cores.

Not a model benchmark: every model call answers at once with a constant (a planned scene, the
prompt unchanged, an 8x8 PNG per seed, constant scores). What is left is what the service itself
costs: HTTP, JWT auth, validation, DB rows, the Director's persist steps, storage writes and, on
the graph side only, the Serve proxy and the deployment-handle hops.

- graph: the REAL ``Ingress`` and REAL ``DirectorDeployment`` bound to instant model deployments,
  on local Ray Serve (this bench-only graph lives here; ``serve/app.py`` stays the production builder);
- plain: the same FastAPI routes (``api.ingress.create_api``) and the same ``DirectorCore`` with
  the same instant ports as plain Python objects, in one uvicorn process on loopback, no Ray.

Both run at once; one HTTP client alternates between them request by request, so both see the same
machine load. Per request kind: POST /api/generate latency, and submit -> completed of a 1-scene
simple and a 1-scene advanced generation (polling the status every ~2 ms; the server-side span
``updated_at - created_at`` of the final status document is recorded too).

    python -m bench.overhead            # JSON + PNG in bench/results
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from ray import serve
from scenechain.protocol import FINISHED_STATUSES

from bench.common import (
    BenchResult,
    bench_jwt_secret,
    free_port,
    local_serve_app,
    machine_info,
    percentile,
    write_result,
)
from director.ports import EnhanceOutcome, PlannedScene, PlanOutcome, ScoreOutcome
from generator.core import GeneratedImage, GenerationRequest, GenerationResult
from scorers.base import ScoreResult

FINISHED = FINISHED_STATUSES  # the protocol's terminal statuses
GOAL_MS = 15.0
BRIEF = "A 15-second ad for a solar bike light"
SIMPLE = {"prompt": BRIEF, "num_scenes": 1}
ADVANCED = {
    "prompt": BRIEF,
    "num_scenes": 1,
    "use_advanced_image_generation": True,
    "advanced_image_num_variations": 4,
    "advanced_image_max_enhancement_iterations": 1,
}
KINDS = {"simple": SIMPLE, "advanced": ADVANCED}
FIGURES = {
    "post_ms": "POST /api/generate -> 202, client-side",
    "e2e_ms": "POST sent -> status 'completed' seen (poll every ~2 ms), client-side",
    "server_ms": "updated_at - created_at of the final status document (server-side), same request",
    "quiet_server_ms": "updated_at - created_at of a second, identical request polled only every 100 ms",
    "poll_ms": "median GET /api/status latency while polling",
}


# -- instant cores (OVERHEAD BENCHMARK ONLY: no model runs) --------------------------------------


@functools.lru_cache(maxsize=256)
def instant_png(seed: int) -> bytes:
    """A constant 8x8 PNG per seed (cached: an instant core does no work per call)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, (seed // 256) % 256, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def instant_plan(brief: str, num_scenes: int) -> PlanOutcome:
    """INSTANT planner: scene k's prompt is the brief."""
    return PlanOutcome(
        scenes=[
            PlannedScene(index=k, prompt=brief, shot_notes=f"scene {k}") for k in range(1, num_scenes + 1)
        ]
    )


def instant_enhance(prompt: str) -> EnhanceOutcome:
    """INSTANT enhancer: the prompt comes back unchanged, approved after one round."""
    return EnhanceOutcome(
        original_prompt=prompt, final_prompt=prompt, iterations=1, approved=True, stop_reason="approved"
    )


def instant_generation(request: GenerationRequest) -> GenerationResult:
    """INSTANT generator: one constant PNG per seed."""
    return GenerationResult(
        images=[GeneratedImage(seed=seed, png=instant_png(seed)) for seed in request.seeds],
        model="instant (overhead benchmark)",
        mode="img2img" if request.reference_png else "text2img",
        steps=0,
        guidance_scale=0.0,
        strength=None,
        width=8,
        height=8,
        seconds=0.0,
        batch_size=len(request.seeds),
    )


def instant_scores(scorer: str, images: int) -> ScoreResult:
    """INSTANT scorer: constant scores, slightly favouring the first image."""
    normalized = [50.0 + (1.0 if k == 0 else 0.0) for k in range(images)]
    return ScoreResult(scorer=scorer, raw=normalized, normalized=normalized, seconds=0.0)


class InstantPorts:
    """``DirectorPorts`` over the instant cores, in-process (the plain baseline's models)."""

    async def plan(self, brief: str, num_scenes: int, seed: int) -> PlanOutcome:
        return instant_plan(brief, num_scenes)

    async def enhance(
        self, prompt: str, max_iterations: int, context: str, seed: int, generation_id: str
    ) -> EnhanceOutcome:
        return instant_enhance(prompt)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        return instant_generation(request)

    async def score(self, scorer: str, prompt: str, images: list[bytes]) -> ScoreResult:
        return instant_scores(scorer, len(images))


# Serve deployments with the handle methods the real Director calls (deployments/director.py HandlePorts).


@serve.deployment(name="InstantEnhancer", max_ongoing_requests=64)
class InstantEnhancer:
    """OVERHEAD BENCHMARK ONLY: the Enhancer's plan/enhance, answering at once."""

    def __init__(self, settings: dict[str, Any], llm: Any = None) -> None:
        self.settings = settings

    async def plan(self, brief: str, num_scenes: int, seed: int | None = None) -> PlanOutcome:
        return instant_plan(brief, num_scenes)

    async def enhance(
        self,
        prompt: str,
        max_iterations: int,
        context: str = "",
        seed: int | None = None,
        generation_id: str = "",
    ) -> EnhanceOutcome:
        return instant_enhance(prompt)


@serve.deployment(name="InstantGenerator", max_ongoing_requests=64)
class InstantGenerator:
    """OVERHEAD BENCHMARK ONLY: the Generator's generate, a constant PNG per seed."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        return instant_generation(request)


@serve.deployment(name="InstantLLM", max_ongoing_requests=64)
class InstantLLM:
    """OVERHEAD BENCHMARK ONLY: stands in for the LLM deployment (the instant Enhancer never calls it)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings


@serve.deployment(name="InstantScorer", max_ongoing_requests=64)
class InstantScorer:
    """OVERHEAD BENCHMARK ONLY: a Scorer's score, constant scores."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.name = settings["name"]

    async def score(self, request: Any) -> ScoreOutcome:
        # request: director.ports.ScoreRequest (prompt, images), as the real Director sends it
        return ScoreOutcome(result=instant_scores(self.name, len(request.images)))


def build_overhead_graph(args: dict[str, Any]) -> Any:
    """The REAL Ingress and REAL Director in ``build_app``'s own graph, over instant deployments."""
    from serve.app import DeploymentClasses, build_app  # noqa: PLC0415

    return build_app(
        args,
        DeploymentClasses(
            enhancer=InstantEnhancer, llm=InstantLLM, generator=InstantGenerator, scorer=InstantScorer
        ),
    )


# -- the plain baseline: same routes, same Director core, one process, no Ray ---------------------


class InProcessDirector:
    """``DirectorClient`` running ``DirectorCore`` in the ingress's own event loop."""

    def __init__(self, core: Any) -> None:
        self.core = core

    async def submit(self, generation_id: str) -> None:
        self.core.start(generation_id)

    async def cancel(self, generation_id: str) -> bool:
        return bool(await self.core.cancel(generation_id))


def create_plain_app(args: dict[str, Any]) -> Any:
    """FastAPI app: ``create_api(IngressService(...))`` over an in-process DirectorCore + instant ports."""
    from api.ingress import IngressService, create_api  # noqa: PLC0415
    from director.core import DirectorCore  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415
    from store.db import Database  # noqa: PLC0415
    from store.events import SqlEventStore  # noqa: PLC0415
    from store.storage import Storage  # noqa: PLC0415

    app_args = AppArgs.model_validate(args).resolved()
    db = Database(app_args.resolved_database_url())
    core = DirectorCore(
        db,
        Storage(app_args.resolved_output_dir()),
        InstantPorts(),
        app_args.director_settings(),  # what DirectorDeployment gives its core: both sides match
        events=SqlEventStore(db.engine),
    )
    return create_api(IngressService(app_args.ingress_settings(), InProcessDirector(core), db=db))


def serve_plain(port: int, output_dir: str) -> None:
    """Run the plain app under uvicorn on 127.0.0.1:``port`` (the baseline's own process)."""
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        # the secret of the graph side, passed by plain_server in the environment (never on argv)
        create_plain_app(overhead_app_args(output_dir, os.environ.get("SCENECHAIN_JWT_SECRET"))),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


@contextlib.contextmanager
def plain_server(output_dir: str, jwt_secret: str, timeout_s: float = 120.0) -> Iterator[str]:
    """The plain app in a subprocess; yields its base URL once /healthz answers; always stopped."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.overhead", "--serve-plain", str(port), "--output-dir", output_dir],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1", "SCENECHAIN_JWT_SECRET": jwt_secret},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plain server did not start (exit code {process.poll()})")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def overhead_app_args(output_dir: str, jwt_secret: str | None = None) -> dict[str, Any]:
    """AppArgs (as replicas receive them) for both sides: tiny profile, own store and SQLite DB, and
    ``jwt_secret`` (None: this process's own random key, enough for an in-process app)."""
    from serve.config import AppArgs  # noqa: PLC0415

    # No recovery sweeps or lease expiry during the measurement (the run is short).
    args = AppArgs(
        profile="tiny",
        output_dir=output_dir,
        recover_interval_s=3600,
        lease_timeout_s=600,
        jwt={"secret": jwt_secret},
    )
    return args.resolved().model_dump(mode="json")


# -- measuring -------------------------------------------------------------------------------------


def _server_span_ms(status: dict[str, Any]) -> float:
    created = dt.datetime.fromisoformat(status["created_at"])
    updated = dt.datetime.fromisoformat(status["updated_at"])
    return (updated - created).total_seconds() * 1000


def submit_and_poll(
    client: httpx.Client, base_url: str, body: dict[str, Any], poll_s: float = 0.002, timeout_s: float = 60.0
) -> dict[str, float]:
    """One generation: POST latency, submit -> completed seen by polling, server-side span, poll latency."""
    started = time.perf_counter()
    accepted = client.post(f"{base_url}/api/generate", json=body)
    post_ms = (time.perf_counter() - started) * 1000
    accepted.raise_for_status()
    generation_id = accepted.json()["id"]
    polls: list[float] = []
    deadline = time.monotonic() + timeout_s
    while True:
        poll_started = time.perf_counter()
        status = client.get(f"{base_url}/api/status/{generation_id}").json()
        polls.append((time.perf_counter() - poll_started) * 1000)
        if status["status"] in FINISHED:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"generation {generation_id} still {status['status']} after {timeout_s}s")
        time.sleep(poll_s)
    if status["status"] != "completed":
        raise RuntimeError(f"generation {generation_id} ended {status['status']}: {status.get('error')}")
    return {
        "post_ms": post_ms,
        "e2e_ms": (time.perf_counter() - started) * 1000,
        "server_ms": _server_span_ms(status),
        "poll_ms": percentile(polls, 50),
    }


def measure(
    client: httpx.Client, targets: dict[str, str], repeats: int, warmup: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """side -> kind -> figure -> samples; the sides alternate (and swap order) request by request."""
    figures: dict[str, dict[str, dict[str, list[float]]]] = {
        side: {kind: {} for kind in KINDS} for side in targets
    }
    sides = list(targets)
    for round_index in range(warmup + repeats):
        order = sides if round_index % 2 == 0 else sides[::-1]
        for kind, body in KINDS.items():
            for side in order:
                sample = submit_and_poll(client, targets[side], {**body, "seed": round_index})
                # The same request again, polled every 100 ms: the server-side span without the
                # CPU the 2 ms polling itself takes from the service (2 cores here).
                quiet = submit_and_poll(client, targets[side], {**body, "seed": round_index}, poll_s=0.1)
                sample["quiet_server_ms"] = quiet["server_ms"]
                if round_index >= warmup:
                    for figure, value in sample.items():
                        figures[side][kind].setdefault(figure, []).append(value)
    return figures


def overhead_summary(figures: dict[str, dict[str, dict[str, list[float]]]]) -> dict[str, float]:
    """p50/p95 per side, kind and figure; overhead (graph p50 - plain p50) per kind and figure."""
    summary: dict[str, float] = {}
    for side, kinds in figures.items():
        for kind, by_figure in kinds.items():
            for figure, values in by_figure.items():
                summary[f"{side}_{kind}_{figure}_p50"] = percentile(values, 50)
                summary[f"{side}_{kind}_{figure}_p95"] = percentile(values, 95)
    for kind in KINDS:
        for figure in FIGURES:
            graph_key, plain_key = f"graph_{kind}_{figure}_p50", f"plain_{kind}_{figure}_p50"
            if graph_key in summary and plain_key in summary:
                summary[f"overhead_{kind}_{figure}_p50"] = summary[graph_key] - summary[plain_key]
    return summary


def bench_overhead(repeats: int = 50, warmup: int = 5, num_cpus: int = 4) -> BenchResult:
    """Graph vs plain FastAPI, instant cores, same client, same run."""
    graph_dir = tempfile.mkdtemp(prefix="scenechain-overhead-graph-")
    plain_dir = tempfile.mkdtemp(prefix="scenechain-overhead-plain-")
    jwt_secret = bench_jwt_secret()
    graph_args = overhead_app_args(graph_dir, jwt_secret)
    with (
        plain_server(plain_dir, jwt_secret) as plain_url,
        local_serve_app(lambda: build_overhead_graph(graph_args), num_cpus=num_cpus) as graph_url,
    ):
        from api.auth import JwtSettings, mint_token  # noqa: PLC0415

        headers = {"Authorization": f"Bearer {mint_token(JwtSettings(secret=jwt_secret), 'overhead')}"}
        with httpx.Client(headers=headers, timeout=60) as client:
            figures = measure(client, {"graph": graph_url, "plain": plain_url}, repeats, warmup)
    summary = overhead_summary(figures)
    # Judged per request kind on the figures the measurement disturbs least: the POST's latency and
    # the quiet server-side span (2 ms polling of a 2-core box slows the graph more than the plain app).
    judged = {
        "POST /api/generate": summary["overhead_simple_post_ms_p50"],
        "simple 1-scene generation": summary["overhead_simple_quiet_server_ms_p50"],
        "advanced 1-scene generation": summary["overhead_advanced_quiet_server_ms_p50"],
    }
    goal_met = all(value <= GOAL_MS for value in judged.values())
    headline = (
        "INSTANT cores (overhead only): graph adds "
        + ", ".join(f"{value:.1f} ms p50 per {what}" for what, value in judged.items())
        + f" over plain FastAPI (goal <= {GOAL_MS:.0f} ms); client-seen submit->completed with 2 ms "
        f"polling: +{summary['overhead_simple_e2e_ms_p50']:.1f} ms simple, "
        f"+{summary['overhead_advanced_e2e_ms_p50']:.1f} ms advanced"
    )
    samples = {f"{side} POST": figures[side]["simple"]["post_ms"] for side in ("plain", "graph")} | {
        f"{side} {kind}": figures[side][kind]["quiet_server_ms"]
        for kind in KINDS
        for side in ("plain", "graph")
    }
    return BenchResult(
        name="overhead",
        title="OVERHEAD: ingress + Serve graph vs plain FastAPI, models replaced by instant cores",
        unit="ms (POST: 202 latency; simple/advanced: server-side submit->completed)",
        samples=samples,
        summary=summary,
        headline=headline,
        goal=f"<= {GOAL_MS:.0f} ms p50 added per request",
        goal_met=goal_met,
        params={
            "cores": "INSTANT (no model runs): constant plan, unchanged prompt, 8x8 PNG per seed, constant scores",
            "repeats": repeats,
            "warmup": warmup,
            "requests": {"simple": SIMPLE, "advanced": ADVANCED},
            "poll_interval_s": 0.002,
            "order": "graph and plain alternate request by request, order swapped every round",
            "plain": "api.ingress.create_api over IngressService + in-process DirectorCore, uvicorn, 1 process",
            "graph": "real Ingress + real DirectorDeployment + instant deployments, local Ray Serve",
            "ray_num_cpus": num_cpus,
            "figures": FIGURES,
            "goal_judged_on": "POST latency and quiet server-side span (generations), each kind separately",
        },
        machine=machine_info(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the overhead benchmark (or, internally, serve the plain baseline)."""
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--serve-plain", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=50, help="Timed requests per kind and side.")
    parser.add_argument("--out", default="bench/results", help="Results directory.")
    options = parser.parse_args(argv)
    if options.serve_plain is not None:
        serve_plain(options.serve_plain, options.output_dir or tempfile.mkdtemp())
        return 0
    result = bench_overhead(repeats=options.repeats)
    write_result(result, Path(options.out))
    print(result.headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
