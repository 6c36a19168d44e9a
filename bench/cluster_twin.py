"""GPU-cluster twin: the real Serve graph over cost-model cores (profile ``cluster-twin``).

Every model call holds a *simulated* GPU for the time published figures give (``weights.costmodel``:
FLUX.1-schnell 512x512 4 steps on an H100, CLIP ViT-H/14 and ViT-L/14 scorers, a 7B VLM for VQA,
an 8B LLM on vLLM with continuous batching); the cores sleep, so the CPU is left to what this
benchmark measures: orchestration. In one run:

(a) the naive sequential pipeline (``bench.baseline.NaivePipeline`` over the same cost-model cores);
(b) the Serve graph at c = 1, 8, 32, 64 concurrent advanced generations on ONE simulated GPU node
    (a local ``ray.cluster_utils.Cluster`` node with 3 logical GPUs: one for the Generator, one for
    the LLM, one shared by the four scorers at 0.25 each);
(c) scale-out to 2 and 4 such nodes (nodes added to the same cluster, autoscaling on, max replicas
    = nodes) at the same load per node as (b)'s ``per_node_load``.

Reported: throughput ratios, p50/p95 seconds per scene, per stage the split of time in the replica
between queueing (batch wait, device wait) and compute (the device hold), and Serve's own time per
handle hop (caller-observed latency minus time inside the replica). All numbers are a cost-model
simulation: compute times come from the curves' cited sources, not from a GPU.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.baseline import NaivePipeline
from bench.common import BenchResult, bench_jwt_secret, free_port, machine_info, percentile

logger = logging.getLogger(__name__)

PROFILE = "cluster-twin"
BRIEF = "A 30-second ad for a solar-powered e-bike: city commute at dawn, mountain trail, sunset rooftop."
FINISHED = {"completed", "failed", "cancelled"}
# One simulated GPU node: Generator (1 GPU, 2 CPU), LLM (1 GPU, 1 CPU), 4 scorers (0.25 GPU, 1 CPU each).
NODE_GPUS = 3
NODE_CPUS = 8
HEAD_EXTRA_CPUS = 4  # the head node also runs Ingress, Director and Enhancer
STAGES = ("Generator", "LLM", "Scorer_pickscore", "Scorer_clipscore", "Scorer_vqa", "Scorer_aesthetic")


class CostModelNaivePipeline(NaivePipeline):
    """The naive pipeline (sequential, one image and one scorer call at a time) on cost-model cores."""

    def __init__(self, profile_name: str = PROFILE) -> None:
        from agents.costmodel import CostModelChatClient  # noqa: PLC0415
        from generator.costmodel import build_generator  # noqa: PLC0415
        from scorers.costmodel import build_scorer_or_costmodel  # noqa: PLC0415
        from scorers.registry import SCORER_NAMES  # noqa: PLC0415
        from weights.profiles import get_profile  # noqa: PLC0415

        profile = get_profile(profile_name)
        self.generator = build_generator(
            profile.model("diffusion"), profile.generation, device_key="naive-generator"
        )
        self.scorers = {
            name: build_scorer_or_costmodel(name, profile.model(name), device_key="naive-scorers")
            for name in SCORER_NAMES
        }
        self.llm = CostModelChatClient(profile.model("llm"))


def _run_naive(generations: int, num_scenes: int, variations: int, iterations: int) -> dict[str, Any]:
    pipeline = CostModelNaivePipeline()
    scene_seconds, wall = pipeline.run_many(
        BRIEF, generations, num_scenes=num_scenes, variations=variations, max_iterations=iterations
    )
    # per scene as a user sees it: the generation's wall time (planning included) over its scenes
    return {
        "scenes_per_min": 60 * generations * num_scenes / wall,
        "scene_seconds": scene_seconds,
        "wall_s": wall,
    }


def twin_app_args(
    output_dir: str,
    max_generations: int,
    max_replicas: int,
    per_node_load: int,
    jwt_secret: str,
    targets: dict[str, int] | None = None,
    directors: int = 1,
) -> Any:
    """The app args of the twin: the levers (batching by images, cross-generation scorer batches,
    queue limits, and autoscaling targets: ``targets`` per stage once measured, else guesses)."""
    targets = targets or {}
    from deployments.settings import BatchSettings  # noqa: PLC0415
    from serve.config import AppArgs, DeploymentSettings  # noqa: PLC0415

    def scaled(target: int, ongoing: int) -> DeploymentSettings:
        return DeploymentSettings(
            num_replicas="auto",
            max_ongoing_requests=ongoing,
            autoscaling_config={
                "min_replicas": 1,
                "initial_replicas": 1,
                "max_replicas": max_replicas,
                # one node's replica serves per_node_load generations at full throughput (run b)
                "target_ongoing_requests": target,
                "upscale_delay_s": 1.0,
                "downscale_delay_s": 600.0,
                "metrics_interval_s": 2.0,
                "look_back_period_s": 4.0,
            },
        )

    return AppArgs(
        profile=PROFILE,
        output_dir=output_dir,
        max_concurrent_generations=max_generations,
        jwt={"secret": jwt_secret},  # one secret for every deploy: a changed one restarts replicas
        recover_interval_s=3600.0,
        # an image budget per generator batch, across requests (Serve's batch_size_fn)
        generator_batch=BatchSettings(max_batch_size=16, batch_wait_timeout_s=0.05, unit="images"),
        # scorers: everything queued in one forward pass when the device frees up (cores batch
        # across prompts), up to 64 images
        scorer_batch=BatchSettings(max_batch_size=64, batch_wait_timeout_s=0.01, unit="images"),
        generator=scaled(targets.get("Generator", per_node_load), 4 * per_node_load),
        llm=scaled(targets.get("LLM", per_node_load), 512),
        # scorer calls are short: they queue only when the shared scorer GPU is saturated
        scorer=scaled(targets.get("Scorer", max(2, per_node_load // 4)), 4 * per_node_load),
        enhancer_deployment=DeploymentSettings(max_ongoing_requests=2048),
        # one Director by default: at 4 nodes its own per-scene work (DB, storage) grew from 0.06 s to
        # 3.5 s per scene; one Director per node measured worse (5.9 s: four writers on one SQLite file)
        director=DeploymentSettings(num_replicas=directors, max_ongoing_requests=2048),
        ingress=DeploymentSettings(max_ongoing_requests=2048),
    )


class _Burst:
    """Submit ``c`` generations over HTTP at once; one thread polls the list endpoint (light on CPU)."""

    def __init__(self, client: httpx.Client, body: dict[str, Any]) -> None:
        self.client = client
        self.body = body

    def run(self, concurrency: int, timeout_s: float = 1200.0) -> dict[str, Any]:
        submitted: dict[str, float] = {}
        lock = threading.Lock()

        def submit(k: int) -> None:
            answer = self.client.post("/api/generate", json={**self.body, "seed": k})
            answer.raise_for_status()
            with lock:
                submitted[answer.json()["id"]] = time.perf_counter()

        started = time.perf_counter()
        threads = [threading.Thread(target=submit, args=(k,)) for k in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finished: dict[str, tuple[str, float]] = {}
        deadline = time.monotonic() + timeout_s
        while len(finished) < concurrency and time.monotonic() < deadline:
            time.sleep(0.5)
            now = time.perf_counter()
            for offset in range(0, concurrency + 100, 100):
                page = self.client.get("/api/generations", params={"limit": 100, "offset": offset}).json()
                for item in page["items"]:
                    if item["id"] in submitted and item["status"] in FINISHED and item["id"] not in finished:
                        finished[item["id"]] = (item["status"], now)
                if len(page["items"]) < 100:
                    break
        wall = max((t for _, t in finished.values()), default=time.perf_counter()) - started
        completed = {gid: t for gid, (status, t) in finished.items() if status == "completed"}
        return {
            "wall_s": wall,
            "ids": list(completed),
            "completed": len(completed),
            "failed": concurrency - len(completed),
            "generation_seconds": [t - submitted[gid] for gid, t in completed.items()],
        }


def _drain_stage_timings(app_name: str, replicas: int) -> dict[str, list[dict[str, float]]]:
    """Every replica's per-request timings (each call drains the replica it lands on)."""
    from ray import serve  # noqa: PLC0415

    timings: dict[str, list[dict[str, float]]] = {}
    for stage in STAGES:
        handle = serve.get_deployment_handle(stage, app_name)
        records: list[dict[str, float]] = []
        for _ in range(8 * replicas):  # random routing: enough calls to reach every replica
            records.extend(handle.stage_timings.remote().result(timeout_s=60))
        timings[stage] = records
    return timings


def _stage_split(timings: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    split: dict[str, dict[str, float]] = {}
    for stage, records in timings.items():
        if not records:
            continue
        in_replica = [r["in_replica_s"] for r in records]
        compute = [r["compute_s"] for r in records]
        queue = [max(0.0, r["in_replica_s"] - r["compute_s"]) for r in records]
        split[stage] = {
            "requests": len(records),
            "in_replica_p50_s": percentile(in_replica, 50),
            "queue_p50_s": percentile(queue, 50),
            "queue_p95_s": percentile(queue, 95),
            "compute_p50_s": percentile(compute, 50),
            "device_wait_p50_s": percentile([r["device_wait_s"] for r in records], 50),
            "queue_share": sum(queue) / max(1e-9, sum(in_replica)),
            "in_replica_sum_s": sum(in_replica),
            "batch_p50": percentile([r["batch"] for r in records], 50),
        }
    return split


def _hop_overhead(app_name: str, probes: int = 30) -> list[float]:
    """Serve's own seconds per handle hop: driver-observed latency of a score call minus its time
    inside the replica (the replica's batch wait and compute are excluded)."""
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    from director.ports import ScoreRequest  # noqa: PLC0415

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    request = ScoreRequest(prompt="a probe", images=[buffer.getvalue()])
    handle = serve.get_deployment_handle("Scorer_aesthetic", app_name)
    for _ in range(8):  # drain what the load left
        handle.stage_timings.remote().result(timeout_s=60)
    hops = []
    for _ in range(probes):
        started = time.perf_counter()
        handle.score.remote(request).result(timeout_s=60)
        observed = time.perf_counter() - started
        records = handle.stage_timings.remote().result(timeout_s=60)
        if records:
            hops.append(observed - records[-1]["in_replica_s"])
    return hops


def _my_cluster_processes() -> list[Any]:
    """The worker processes of this run's Ray cluster (children of its raylets), other runs' excluded."""
    import psutil  # noqa: PLC0415
    import ray  # noqa: PLC0415

    session = (
        ray.get_runtime_context().gcs_address and ray._private.worker._global_node.get_session_dir_path()
    )
    raylets = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "raylet" and any(session in part for part in (p.info["cmdline"] or []))
    ]
    children = [child for raylet in raylets for child in raylet.children(recursive=False)]
    return raylets + children


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far per role of this run's cluster (deployment name, controller, proxy, ray)."""
    import psutil  # noqa: PLC0415

    used: dict[str, float] = {}
    for process in _my_cluster_processes():
        try:
            title = " ".join(process.cmdline())
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "ServeReplica:" in title:
            role = title.split("ServeReplica:", 1)[1].split()[0].split(":")[-1]
        elif "ServeController" in title:
            role = "serve-controller"
        elif "ProxyActor" in title:
            role = "serve-proxy"
        else:
            role = "ray-system"
        used[role] = used.get(role, 0.0) + times.user + times.system
    return used


def _cpu_share(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """Cores used per role over a burst (CPU seconds / wall seconds)."""
    return {
        role: round((after[role] - before.get(role, 0.0)) / wall_s, 3)
        for role in sorted(after)
        if wall_s > 0 and after[role] - before.get(role, 0.0) > 0
    }


def _scene_timeline(client: httpx.Client, generation_ids: list[str], num_scenes: int) -> dict[str, float]:
    """Median seconds per scene step as the Director recorded them (a sample of generations): what is
    left of a scene's total after enhance, generate and score is the Director's own work."""
    steps: dict[str, list[float]] = {
        "enhance_s": [],
        "generate_s": [],
        "score_s": [],
        "total_s": [],
        "director_s": [],
    }
    for generation_id in generation_ids[:12]:
        timings = client.get(f"/api/status/{generation_id}").json().get("timings") or {}
        for key in ("plan_s", "total_s"):
            if key in timings:
                steps.setdefault(f"generation_{key}", []).append(float(timings[key]))
        for n in range(1, num_scenes + 1):
            scene = timings.get(f"scene_{n}") or {}
            if "total_s" not in scene:
                continue
            for key in ("enhance_s", "generate_s", "score_s", "total_s"):
                steps[key].append(float(scene.get(key) or 0.0))
            steps["director_s"].append(
                float(scene["total_s"])
                - sum(float(scene.get(k) or 0.0) for k in ("enhance_s", "generate_s", "score_s"))
            )
    return {f"{key}_p50": percentile(values, 50) for key, values in steps.items() if values}


def _replicas_running(app_name: str) -> dict[str, int]:
    from ray import serve  # noqa: PLC0415

    status = serve.status().applications[app_name]
    return {
        name: deployment.replica_states.get("RUNNING", 0) for name, deployment in status.deployments.items()
    }


def _wait_for_replicas(app_name: str, wanted: int, timeout_s: float) -> dict[str, int]:
    """Until the GPU-bound deployments (Generator, LLM) run ``wanted`` replicas; scorers scale as
    their own queues say."""
    deadline = time.monotonic() + timeout_s
    running = _replicas_running(app_name)
    while time.monotonic() < deadline:
        running = _replicas_running(app_name)
        if all(running.get(stage, 0) >= wanted for stage in ("Generator", "LLM")):
            break
        time.sleep(2)
    return running


def _run_graph(
    concurrencies: list[int],
    scale_nodes: list[int],
    per_node_load: int,
    num_scenes: int,
    variations: int,
    iterations: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415
    from ray.cluster_utils import Cluster  # noqa: PLC0415

    from api.auth import mint_token  # noqa: PLC0415
    from serve.app import build_app  # noqa: PLC0415

    output_dir = tempfile.mkdtemp(prefix="scenechain-cluster-twin-")
    max_generations = max([*concurrencies, per_node_load * max(scale_nodes, default=1)])
    app_name = "scenechain"
    port = free_port()
    secret = bench_jwt_secret()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": NODE_CPUS + HEAD_EXTRA_CPUS,
            "num_gpus": NODE_GPUS,
            "include_dashboard": False,
        },
    )
    results: dict[str, Any] = {"one_node": {}, "scale_out": {}}
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})

        def deploy(max_replicas: int, targets: dict[str, int] | None = None) -> Any:
            args = twin_app_args(
                output_dir,
                max_generations,
                max_replicas,
                per_node_load,
                secret,
                targets,
            )
            serve.run(build_app(args), name=app_name, route_prefix="/")
            return args

        args = deploy(1)
        body = {
            "prompt": BRIEF,
            "use_advanced_image_generation": True,
            "advanced_image_num_variations": variations,
            "advanced_image_max_enhancement_iterations": iterations,
            "num_scenes": num_scenes,
        }

        def client_for(user: str) -> httpx.Client:
            headers = {"Authorization": f"Bearer {mint_token(args.jwt, user)}"}
            return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120)

        with client_for("warmup") as client:
            _Burst(client, {**body, "num_scenes": 1}).run(2)
        _drain_stage_timings(app_name, 1)

        # (b) one node
        def measure(user: str, load: int, replicas: int) -> dict[str, Any]:
            with client_for(user) as client:
                before = _cpu_seconds()
                figures = _Burst(client, body).run(load)
                figures["cpu_cores"] = _cpu_share(before, _cpu_seconds(), figures["wall_s"])
                figures["scene_timeline"] = _scene_timeline(client, figures.pop("ids"), num_scenes)
            figures["stages"] = _stage_split(_drain_stage_timings(app_name, replicas))
            for stage in figures["stages"].values():  # Little's law: mean requests in the replica(s)
                stage["mean_ongoing"] = stage.pop("in_replica_sum_s") / figures["wall_s"]
            log(
                f"{user}: {figures['completed']}/{load} completed in {figures['wall_s']:.1f} s; "
                f"scene timeline {figures['scene_timeline']}; cores {figures['cpu_cores']}; "
                + "; ".join(
                    f"{stage} queue {v['queue_p50_s']:.2f}s compute {v['compute_p50_s']:.2f}s batch {v['batch_p50']:.0f}"
                    for stage, v in figures["stages"].items()
                )
            )
            return figures

        for concurrency in concurrencies:
            results["one_node"][concurrency] = measure(f"one-node-c{concurrency}", concurrency, 1)
        results["hop_seconds"] = _hop_overhead(app_name)
        # autoscaling targets from the measurement: 0.8 x the mean requests one node's replica held
        # at per_node_load, so N nodes' load asks for N replicas with headroom
        measured = results["one_node"].get(per_node_load, {}).get("stages", {})
        scorer_loads = [v["mean_ongoing"] for k, v in measured.items() if k.startswith("Scorer_")]
        targets = {
            stage: max(1, int(0.8 * load))
            for stage, load in (
                ("Generator", measured.get("Generator", {}).get("mean_ongoing", per_node_load)),
                ("LLM", measured.get("LLM", {}).get("mean_ongoing", per_node_load)),
                ("Scorer", min(scorer_loads, default=2.0)),
            )
        }
        results["autoscaling_targets"] = targets
        log(f"autoscaling targets from the one-node run at c={per_node_load}: {targets}")
        # (c) scale-out: add nodes, raise max_replicas, let autoscaling place replicas under load
        nodes = 1
        for target in scale_nodes:
            while nodes < target:
                cluster.add_node(num_cpus=NODE_CPUS, num_gpus=NODE_GPUS)
                nodes += 1
            args = deploy(target, targets)
            load = per_node_load * target
            with client_for(f"warm-{target}") as client:
                burst = _Burst(client, {**body, "num_scenes": 1})
                warm = threading.Thread(target=burst.run, args=(load,))
                warm.start()
                running = _wait_for_replicas(app_name, target, timeout_s=150)
                warm.join()
            _drain_stage_timings(app_name, target)
            log(f"{target} nodes: replicas running {running}")
            figures = measure(f"nodes-{target}", load, target)
            figures["replicas"] = running
            results["scale_out"][target] = figures
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
    return results


def _scenes_per_min(figures: dict[str, Any], num_scenes: int) -> float:
    return 60 * figures["completed"] * num_scenes / figures["wall_s"] if figures["wall_s"] > 0 else 0.0


def bench_cluster_twin(
    concurrencies: tuple[int, ...] = (1, 8, 32, 64),
    scale_nodes: tuple[int, ...] = (2, 4),
    per_node_load: int = 32,
    num_scenes: int = 2,
    variations: int = 4,
    iterations: int = 2,
    naive_generations: int = 2,
) -> BenchResult:
    """Naive pipeline vs the Serve graph on one simulated GPU node and scaled out, all cost-model cores."""
    from weights.costmodel import CURVES, LLM_CURVES  # noqa: PLC0415
    from weights.profiles import get_profile  # noqa: PLC0415

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    started = time.perf_counter()
    naive = _run_naive(naive_generations, num_scenes, variations, iterations)
    logger.info("naive: %.2f scenes/min", naive["scenes_per_min"])
    graph = _run_graph(
        list(concurrencies), list(scale_nodes), per_node_load, num_scenes, variations, iterations, logger.info
    )
    samples: dict[str, list[float]] = {"naive": naive["scene_seconds"]}
    summary: dict[str, float] = {
        "naive_scenes_per_min": naive["scenes_per_min"],
        "naive_p50_s": percentile(naive["scene_seconds"], 50),
        "naive_p95_s": percentile(naive["scene_seconds"], 95),
    }
    stages: dict[str, Any] = {}
    for concurrency, figures in graph["one_node"].items():
        per_scene = [s / num_scenes for s in figures["generation_seconds"]] or [0.0]
        samples[f"1 node c={concurrency}"] = per_scene
        rate = _scenes_per_min(figures, num_scenes)
        summary[f"graph_c{concurrency}_scenes_per_min"] = rate
        summary[f"graph_c{concurrency}_ratio"] = rate / naive["scenes_per_min"]
        summary[f"graph_c{concurrency}_p50_s"] = percentile(per_scene, 50)
        summary[f"graph_c{concurrency}_p95_s"] = percentile(per_scene, 95)
        summary[f"graph_c{concurrency}_failed"] = figures["failed"]
        stages[f"1 node c={concurrency}"] = {
            "cpu_cores": figures["cpu_cores"],
            "scene_timeline": figures["scene_timeline"],
            **figures["stages"],
        }
    one_node_rate = summary.get(f"graph_c{per_node_load}_scenes_per_min", 0.0)
    for nodes, figures in graph["scale_out"].items():
        per_scene = [s / num_scenes for s in figures["generation_seconds"]] or [0.0]
        samples[f"{nodes} nodes c={per_node_load * nodes}"] = per_scene
        rate = _scenes_per_min(figures, num_scenes)
        summary[f"nodes{nodes}_scenes_per_min"] = rate
        summary[f"nodes{nodes}_speedup"] = rate / one_node_rate if one_node_rate else 0.0
        summary[f"nodes{nodes}_efficiency"] = summary[f"nodes{nodes}_speedup"] / nodes
        summary[f"nodes{nodes}_p50_s"] = percentile(per_scene, 50)
        summary[f"nodes{nodes}_p95_s"] = percentile(per_scene, 95)
        summary[f"nodes{nodes}_failed"] = figures["failed"]
        stages[f"{nodes} nodes"] = {
            "replicas": figures["replicas"],
            "cpu_cores": figures["cpu_cores"],
            "scene_timeline": figures["scene_timeline"],
            **figures["stages"],
        }
    stages["autoscaling_targets"] = graph.get("autoscaling_targets", {})
    hops = graph.get("hop_seconds") or [float("nan")]
    summary["hop_p50_ms"] = 1000 * percentile(hops, 50)
    summary["hop_p95_ms"] = 1000 * percentile(hops, 95)
    summary["bench_wall_s"] = time.perf_counter() - started
    ratio8 = summary.get("graph_c8_ratio", 0.0)
    ratio32 = summary.get("graph_c32_ratio", 0.0)
    top = max(scale_nodes, default=1)
    efficiency = summary.get(f"nodes{top}_efficiency", 0.0)
    goals = {
        "c8_4x": ratio8 >= 4,
        "c32_8x": ratio32 >= 8,
        f"efficiency_{top}_nodes_0.8": efficiency >= 0.8,
        "hop_p50_5ms": summary["hop_p50_ms"] <= 5,
    }
    profile = get_profile(PROFILE)
    curves = {
        role: (CURVES.get(name) or LLM_CURVES[name]).model_dump()
        for role, spec in profile.models.items()
        if (name := spec.source.split(":", 1)[1])
    }
    return BenchResult(
        name="cluster_twin",
        title="COST-MODEL SIMULATION: Serve graph vs naive pipeline on simulated GPU nodes (cluster-twin)",
        unit="seconds per scene (simulated GPU time from published figures; lower is better)",
        samples=samples,
        summary=summary,
        headline=(
            f"simulation: graph {ratio8:.1f}x naive at c=8, {ratio32:.1f}x at c=32 (1 node); "
            f"{top} nodes {summary.get(f'nodes{top}_speedup', 0.0):.2f}x one node (efficiency {efficiency:.2f}); "
            f"Serve hop p50 {summary['hop_p50_ms']:.1f} ms"
        ),
        goal=">= 4x naive at c=8, >= 8x at c=32, scale-out efficiency >= 0.8 at 4 nodes, hop p50 <= 5 ms",
        goal_met=all(goals.values()),
        params={
            "profile": PROFILE,
            "concurrencies": list(concurrencies),
            "scale_nodes": list(scale_nodes),
            "per_node_load": per_node_load,
            "num_scenes": num_scenes,
            "variations": variations,
            "iterations": iterations,
            "naive_generations": naive_generations,
            "goals": goals,
            "stages": stages,
            "curves": curves,
            "simulation": "cost-model cores: every model call sleeps on a simulated GPU for the time of its "
            "curve (weights.costmodel, sources in 'curves'); CPU work (Serve, HTTP, DB, PNGs) is real",
        },
        machine=machine_info(),
    )
