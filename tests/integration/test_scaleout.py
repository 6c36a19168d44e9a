"""Scale-out on a real local multi-node Ray cluster: placement across nodes, autoscaling, backpressure.

One cluster for the module (``ray.cluster_utils.Cluster`` on 127.0.0.1): a CPU-only head node and
a worker node advertising one *logical* GPU, like cluster.yaml's CPU head and GPU workers. The
tiny profile's GPU shares (generator 0.25, scorers 0.125) can only place on the worker. Loads are
bounded (a fixed number of requests, deadlines on every wait); the cluster is always shut down.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from infra import wait_for

# The timeout covers a run in an isolated interpreter (see isolated_outcomes); tests have their own deadlines.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1600)]

APP = "scenechain"
DEPLOY_TIMEOUT_S = 240
GENERATION_TIMEOUT_S = 180


class LocalCluster:
    """The running cluster: node ids by role and the HTTP base URL."""

    def __init__(self, cluster: Any, head_id: str, gpu_id: str, base_url: str) -> None:
        self.cluster = cluster
        self.head_id = head_id
        self.gpu_id = gpu_id
        self.base_url = base_url

    def deploy(self, args: dict[str, Any]) -> None:
        from ray import serve

        from serve.app import build_app

        serve.run(build_app(args), name=APP, route_prefix="/", blocking=False)
        wait_for(lambda: app_status() == "RUNNING", DEPLOY_TIMEOUT_S, "the app to be RUNNING", poll_s=1.0)

    def remove(self) -> None:
        from ray import serve

        serve.delete(APP)


def app_status() -> str:
    from ray import serve

    application = serve.status().applications.get(APP)
    if application is None:
        return "MISSING"
    if application.status == "DEPLOY_FAILED":
        raise AssertionError(f"deploy failed: {application.message}")
    return str(application.status.value if hasattr(application.status, "value") else application.status)


def running_replicas(deployment: str) -> int:
    from ray import serve

    application = serve.status().applications[APP]
    states = application.deployments[deployment].replica_states
    return int(
        sum(count for state, count in states.items() if str(getattr(state, "value", state)) == "RUNNING")
    )


def replica_nodes() -> dict[str, set[str]]:
    """Deployment name -> ids of the nodes its live replicas run on (from the GCS actor table)."""
    from ray._private import state

    nodes: dict[str, set[str]] = {}
    for actor in state.actors().values():
        name = actor.get("Name") or ""
        if actor.get("State") != "ALIVE" or not name.startswith(f"SERVE_REPLICA::{APP}#"):
            continue
        deployment = name.split("#")[1]
        nodes.setdefault(deployment, set()).add(actor["Address"]["NodeID"])
    return nodes


def run_isolated(junit_xml: Path) -> dict[str, tuple[str, str]]:
    """Run this module in a fresh interpreter; {test name: (outcome, message)} from its JUnit XML."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        __file__,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit_xml}",
    ]
    subprocess.run(command, cwd=Path(__file__).resolve().parents[2], timeout=1500, check=False)
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, child.get("message", "") + "\n" + (child.text or "")[-3000:]
        outcomes[case.get("name", "")] = (outcome, message)
    return outcomes


@pytest.fixture(scope="module")
def isolated_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]] | None:
    """None normally; when this process already holds a Ray driver (another module's session-wide
    app: one driver per process), the module's outcomes from a run in a fresh interpreter."""
    import ray

    if not ray.is_initialized():
        return None
    return run_isolated(tmp_path_factory.mktemp("scaleout") / "junit.xml")


@pytest.fixture(autouse=True)
def _report_isolated_outcome(request: pytest.FixtureRequest, isolated_outcomes: dict | None) -> None:
    if isolated_outcomes is None:
        return
    outcome, message = isolated_outcomes.get(
        request.node.name, ("error", "not run in the isolated interpreter")
    )
    if outcome == "skipped":
        pytest.skip(message.strip().splitlines()[0] if message.strip() else "skipped")
    if outcome != "passed":
        pytest.fail(f"failed in the isolated interpreter: {message}", pytrace=False)


@pytest.fixture(scope="module")
def local_cluster(isolated_outcomes: dict | None) -> Iterator[LocalCluster | None]:
    """The cluster (None when the module already ran in an isolated interpreter: tests return)."""
    if isolated_outcomes is not None:
        yield None
        return
    import ray
    from infra import free_port
    from ray import serve
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        # Every node on 127.0.0.1: without this Ray advertises the host's external address for
        # "localhost" and the driver dials the GCS there (the env var reaches the nodes' processes).
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2,
                "num_gpus": 0,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
                "resources": {"head": 1},
            },
        )
        try:
            gpu_node = cluster.add_node(
                num_cpus=2, num_gpus=1, node_ip_address="127.0.0.1", resources={"gpu_worker": 1}
            )
            ray.init(
                address=cluster.address,
                runtime_env={"worker_process_setup_hook": "store.logging_setup.install"},
                log_to_driver=False,
            )
            port = free_port()
            serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
            yield LocalCluster(
                cluster, cluster.head_node.node_id, gpu_node.node_id, f"http://127.0.0.1:{port}"
            )
        finally:
            try:
                if ray.is_initialized():
                    serve.shutdown()
            finally:
                # A handle's metrics task that fires after ray.shutdown() would auto-connect the driver
                # to the still-running cluster again, and cluster.shutdown() then refuses to remove the
                # node the driver is on (seen once in CI): no auto-connect while tearing down.
                patch.setattr("ray._private.auto_init_hook.enable_auto_connect", False)
                ray.shutdown()
                cluster.shutdown()


def token(user: str = "alice") -> dict[str, str]:
    from api.auth import mint_token
    from serve.config import AppArgs

    return {"Authorization": f"Bearer {mint_token(AppArgs.from_env().jwt, user)}"}


def base_args(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The tiny profile with small queues, on this test's own store and DB."""
    args: dict[str, Any] = {
        "profile": "tiny",
        "output_dir": str(tmp_path / "out"),
        "max_concurrent_generations": 2,
        "recover_interval_s": 3600,
        "generator": {"ray_actor_options": {"num_cpus": 0.25, "num_gpus": 0.25}, "max_queued_requests": 64},
        "scorer": {"ray_actor_options": {"num_cpus": 0.1, "num_gpus": 0.125}, "max_queued_requests": 64},
        "ingress": {"max_ongoing_requests": 32, "max_queued_requests": 64},
    }
    args.update(overrides)
    return args


def poll_generation(client: httpx.Client, status_url: str, timeout_s: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        document = client.get(status_url, headers=token()).json()
        return document if document["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(finished, timeout_s, f"{status_url} to finish", poll_s=1.0)


# -- multi-node ------------------------------------------------------------------------------------


def test_generation_runs_across_nodes_with_gpu_replicas_on_the_gpu_node(
    local_cluster: LocalCluster | None, tmp_path: Path
) -> None:
    if local_cluster is None:  # ran (and was reported) in an isolated interpreter
        return
    local_cluster.deploy(base_args(tmp_path))
    try:
        # 1. placement: GPU-share replicas can only be on the GPU node; the graph spans both nodes
        nodes = replica_nodes()
        assert set(nodes) >= {"Ingress", "Director", "Generator", "Scorer_pickscore", "LLM", "Enhancer"}
        for deployment in (
            "Generator",
            "Scorer_pickscore",
            "Scorer_clipscore",
            "Scorer_vqa",
            "Scorer_aesthetic",
        ):
            assert nodes[deployment] == {local_cluster.gpu_id}, deployment
        assert set().union(*nodes.values()) == {local_cluster.head_id, local_cluster.gpu_id}

        # 2. one advanced generation through HTTP: every scene generated, scored, kept and chained
        with httpx.Client(base_url=local_cluster.base_url, timeout=30) as client:
            answer = client.post(
                "/api/generate",
                headers={**token(), "X-Request-ID": "scaleout-req-1"},
                json={
                    "prompt": "A 15-second ad for a solar bike light",
                    "num_scenes": 2,
                    "seed": 11,
                    "use_advanced_image_generation": True,
                    "advanced_image_num_variations": 2,
                    "advanced_image_max_enhancement_iterations": 1,
                },
            )
            assert answer.status_code == 202, answer.text
            assert answer.headers.get("x-request-id") == "scaleout-req-1"  # Serve echoes our request id
            document = poll_generation(client, answer.json()["status_url"], GENERATION_TIMEOUT_S)
            assert document["status"] == "completed", document
            assert document["progress"]["scenes_done"] == 2 and len(document["scenes"]) == 2
            for scene in (1, 2):
                image = client.get(f"/api/generations/{document['id']}/scenes/{scene}/image", headers=token())
                assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            assert document["image_quality_scores"], "advanced mode scores every scene"

        # 3. Prometheus metrics on the nodes' export ports: Serve's own, and ours once the Ingress records them
        import api.ingress

        wanted = ["ray_serve_num_http_requests_total"]
        if hasattr(api.ingress, "metrics"):
            wanted.append("ray_scenechain_requests_total{")
        wait_for(
            lambda: all(name in scrape(local_cluster) for name in wanted), 90, f"metrics {wanted}", poll_s=3
        )

        # 4. the request id travelled from the proxy to every deployment; our JSON lines carry both ids
        logs = Path(local_cluster.cluster.head_node.get_session_dir_path()) / "logs"
        wait_for(lambda: logged_ids(logs, document["id"]) >= {"Ingress", "Director"}, 30, "JSON log lines")
        for deployment in ("Enhancer", "LLM", "Generator", "Scorer_pickscore"):
            wait_for(
                lambda d=deployment: any(
                    "scaleout-req-1" in path.read_text(errors="replace")
                    for path in (logs / "serve").glob(f"replica_{APP}_{d}_*.log")
                ),
                30,
                f"{deployment}'s replica log to show the request id",
            )
    finally:
        local_cluster.remove()


def scrape(local_cluster: LocalCluster) -> str:
    """Every node's Prometheus text (Ray's metrics export port), concatenated."""
    texts = []
    for node in local_cluster.cluster.list_all_nodes():
        try:
            texts.append(httpx.get(f"http://127.0.0.1:{node.metrics_export_port}/metrics", timeout=10).text)
        except httpx.HTTPError:
            continue
    return "\n".join(texts)


def logged_ids(logs: Path, generation_id: str) -> set[str]:
    """Deployments whose JSON log lines carry both this generation's id and our request id."""
    found: set[str] = set()
    for path in logs.glob("worker-*.err"):
        for line in path.read_text(errors="replace").splitlines():
            if generation_id not in line or not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("generation_id") == generation_id and record.get("request_id") == "scaleout-req-1":
                found.add(record.get("deployment", ""))
    return found


# -- autoscaling -----------------------------------------------------------------------------------


GENERATOR_AUTOSCALING = {
    "min_replicas": 1,
    "initial_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 1,
    "downscale_delay_s": 5,
    "look_back_period_s": 2,
    "metrics_interval_s": 0.5,
}


def test_generator_scales_up_under_load_within_max_and_back_down(
    local_cluster: LocalCluster | None, tmp_path: Path
) -> None:
    if local_cluster is None:  # ran (and was reported) in an isolated interpreter
        return
    from ray import serve

    from generator.core import GenerationRequest

    args = base_args(
        tmp_path,
        generator={
            "num_replicas": "auto",
            "autoscaling_config": GENERATOR_AUTOSCALING,
            "max_ongoing_requests": 2,
            "max_queued_requests": 256,
            "ray_actor_options": {"num_cpus": 0.25, "num_gpus": 0.25},
        },
    )
    local_cluster.deploy(args)
    try:
        assert running_replicas("Generator") == 1
        handle = serve.get_deployment_handle("Generator", app_name=APP)
        stop = threading.Event()
        served: list[int] = []

        def worker(k: int) -> None:
            # Bounded: one request in flight per worker, until stopped (or 240 s at most).
            deadline = time.monotonic() + 240
            while not stop.is_set() and time.monotonic() < deadline:
                handle.generate.remote(GenerationRequest(prompt=f"load {k}", seeds=[k, k + 1])).result()
                served.append(k)

        peak = 1
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            workers = [pool.submit(worker, k) for k in range(6)]
            try:
                # a loaded 2-core machine can take minutes to start the second replica
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline and peak < GENERATOR_AUTOSCALING["max_replicas"]:
                    peak = max(peak, running_replicas("Generator"))
                    time.sleep(1.0)
                # hold the load a little longer: it must not exceed max_replicas
                for _ in range(5):
                    peak = max(peak, running_replicas("Generator"))
                    time.sleep(1.0)
            finally:
                stop.set()
                for future in workers:
                    future.result(timeout=120)
        assert served, "no request was served"
        assert peak == GENERATOR_AUTOSCALING["max_replicas"], f"never scaled up to max (peak {peak})"
        # Within max, then back down to min once the load stops.
        wait_for(
            lambda: running_replicas("Generator") == GENERATOR_AUTOSCALING["min_replicas"],
            90,
            "the Generator to scale back down",
            poll_s=1.0,
        )
        assert replica_nodes()["Generator"] == {local_cluster.gpu_id}
    finally:
        local_cluster.remove()


# -- backpressure ----------------------------------------------------------------------------------


def test_a_bounded_burst_gets_202s_then_503_with_retry_after_and_json(
    local_cluster: LocalCluster | None, tmp_path: Path
) -> None:
    if local_cluster is None:  # ran (and was reported) in an isolated interpreter
        return
    from bench.load import run_burst
    from serve.config import AppArgs

    if "max_queued_generations" not in AppArgs.model_fields:
        pytest.skip("needs AppArgs.max_queued_generations + the ingress 503 handler (issue #7 proposal)")
    queue_limit = 2
    local_cluster.deploy(
        base_args(tmp_path, max_concurrent_generations=1, max_queued_generations=queue_limit, retry_after_s=3)
    )
    try:
        body = {"prompt": "a burst ad", "num_scenes": 4}
        result = run_burst(
            f"{local_cluster.base_url}/api/generate",
            n=12,
            concurrency=12,
            json_body=lambda k: {**body, "seed": k},
            headers=token(),
            timeout_s=60,
        )
        assert result.seconds < 60, f"the burst hung: {result.summary()}"
        assert set(result.codes) <= {202, 503}, result.summary()  # no 5xx crash, no timeout
        accepted, refused = result.with_status(202), result.with_status(503)
        assert len(accepted) == queue_limit and len(refused) == 12 - queue_limit, result.summary()
        for answer in refused:
            assert answer.retry_after is not None and int(answer.retry_after) >= 1
            assert answer.body["error"] == "overloaded" and "retry" in answer.body["detail"].lower()
        with httpx.Client(base_url=local_cluster.base_url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200  # still serving
            for answer in accepted:  # free the queue; new work is accepted again
                client.post(f"/api/generations/{answer.body['id']}/cancel", headers=token())
            assert client.post("/api/generate", headers=token(), json=body).status_code == 202
    finally:
        local_cluster.remove()
