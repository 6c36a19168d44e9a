"""Issue #9 memory: peak RSS of the whole stack per deployment, and GPU memory per deployment.

Starts local Ray + the app (real models of the profile, ``configs/tiny.yaml`` settings), runs one
advanced generation (2 scenes, 4 variations) and samples every 0.2 s, from deploy to the end:

- the RSS (and PSS: shared pages split between the processes sharing them) of every process of the
  stack: the driver (this process) and its descendants, which are Ray's system processes (gcs_server,
  raylet, dashboard, log monitor, agents), the Serve controller and proxy, and one worker per
  replica; replicas are mapped to their deployment through Ray's actor table (pid -> actor name);
- when ``nvidia-smi`` exists, the GPU memory of each compute process, mapped the same way.

Per deployment the peak is the largest sum of its processes' simultaneous samples; the total peak
is the largest sum over all processes at one sampling instant (not the sum of the per-process peaks).
RSS counts shared pages (torch, libraries) once per process, so the RSS total overstates the real
footprint; the PSS total does not.

    python -m bench.memory              # JSON + PNG in bench/results
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from scenechain.protocol import FINISHED_STATUSES

from bench.common import (
    BenchResult,
    bench_jwt_secret,
    local_serve_app,
    machine_info,
    tiny_config_args,
    write_result,
)

MIB = 1024 * 1024
FINISHED = FINISHED_STATUSES  # the protocol's terminal statuses
BRIEF = "A 30-second ad for a solar-powered e-bike: city commute at dawn, mountain trail."
ADVANCED = {
    "prompt": BRIEF,
    "num_scenes": 2,
    "use_advanced_image_generation": True,
    "advanced_image_num_variations": 4,
    "advanced_image_max_enhancement_iterations": 2,
    "seed": 7,
}
DRIVER = "driver (bench process)"
# Ray's own processes, by executable / script / process title.
RAY_SYSTEM = {
    "gcs_server": "ray: gcs_server",
    "raylet": "ray: raylet",
    "dashboard/dashboard.py": "ray: dashboard",
    "_private/log_monitor.py": "ray: log monitor",
    "autoscaler/_private/monitor.py": "ray: autoscaler monitor",
    "dashboard/agent.py": "ray: dashboard agent",
    "runtime_env/agent/main.py": "ray: runtime env agent",
    "workers/default_worker.py": "ray: idle workers",  # a worker before it sets its title
    "ray::DashboardAgent": "ray: dashboard agent",
    "ray::RuntimeEnvAgent": "ray: runtime env agent",
    "ray::IDLE": "ray: idle workers",
}


# -- pid -> what it is (pure, unit-tested) -------------------------------------------------------


def deployment_of_actor(name: str | None, class_name: str | None) -> str | None:
    """The stack component a Ray actor is: a Serve deployment name, 'Serve proxy', 'Serve controller'.

    Replica actor names look like ``SERVE_REPLICA::<app>#<deployment>#<replica id>``; their class
    names like ``ServeReplica:<app>:<deployment>``. None for an actor that is not Serve's.
    """
    if name and name.startswith("SERVE_REPLICA::"):
        parts = name.split("#")
        if len(parts) >= 2 and parts[1]:
            return parts[1]
    if class_name and class_name.startswith("ServeReplica:"):
        return class_name.split(":")[-1] or None
    if (name and name.startswith("SERVE_PROXY_ACTOR")) or class_name == "ProxyActor":
        return "Serve proxy"
    if (name and name.startswith("SERVE_CONTROLLER_ACTOR")) or class_name == "ServeController":
        return "Serve controller"
    return None


def label_from_title(cmdline: Sequence[str], name: str) -> str:
    """What a process is from its command line / title when the actor table does not know its pid."""
    title = " ".join(cmdline) or name
    first = cmdline[0] if cmdline else name
    # A replica's title: ray::SERVE_REPLICA::<app>#<deployment>#<id>:ServeReplica:<app>:<deployment>
    # while it starts, then ray::ServeReplica:<app>:<deployment>[.<method>] while it runs a call.
    replica = _REPLICA_NAME.search(title) or _REPLICA_CLASS.search(title)
    if replica:
        return replica.group(1)
    if first.startswith("ray::"):
        actor_class = first.removeprefix("ray::").split(".")[0].split(":")[-1]
        component = deployment_of_actor(None, actor_class)
        if component:
            return component
        return RAY_SYSTEM.get(f"ray::{actor_class}", f"ray worker: {actor_class}")
    for marker, label in RAY_SYSTEM.items():
        if not marker.startswith("ray::") and any(
            arg == marker or arg.endswith("/" + marker) for arg in cmdline[:4]
        ):
            return label
    scripts = [Path(arg).name for arg in cmdline if arg.endswith(".py")]
    return f"other: {scripts[0] if scripts else Path(first).name or name}"


_REPLICA_NAME = re.compile(r"SERVE_REPLICA::[^#\s]*#([^#\s]+)#")
_REPLICA_CLASS = re.compile(r"ServeReplica:[^:\s]+:([^\s.:#]+)")


def label_process(
    pid: int, driver_pid: int, actor_labels: dict[int, str], cmdline: Sequence[str], name: str
) -> str:
    """The component a pid belongs to: driver, a deployment (via the actor table), or by its title."""
    if pid == driver_pid:
        return DRIVER
    if pid in actor_labels:
        return actor_labels[pid]
    return label_from_title(cmdline, name)


@dataclass
class Sample:
    """One sampling instant: per process (pid), its component label and memory in bytes."""

    t: float
    rss: dict[int, int] = field(default_factory=dict)
    pss: dict[int, int] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)


def by_label(sample_values: dict[int, int], labels: dict[int, str]) -> dict[str, int]:
    """Bytes per component at one instant (processes of one component summed)."""
    totals: dict[str, int] = {}
    for pid, value in sample_values.items():
        label = labels.get(pid, f"pid {pid}")
        totals[label] = totals.get(label, 0) + value
    return totals


def peaks(samples: Iterable[Sample], metric: str = "rss") -> tuple[dict[str, int], int]:
    """(peak bytes per component, peak of the simultaneous total) over the samples."""
    per_label: dict[str, int] = {}
    total_peak = 0
    for sample in samples:
        values: dict[int, int] = getattr(sample, metric)
        for label, value in by_label(values, sample.labels).items():
            per_label[label] = max(per_label.get(label, 0), value)
        total_peak = max(total_peak, sum(values.values()))
    return per_label, total_peak


def at_total_peak(samples: Sequence[Sample], metric: str = "rss") -> tuple[float, dict[str, int]]:
    """(time, bytes per component) of the instant whose simultaneous total was the largest."""
    best = max(samples, key=lambda sample: sum(getattr(sample, metric).values()), default=None)
    if best is None:
        return 0.0, {}
    return best.t, by_label(getattr(best, metric), best.labels)


def without_driver(sample: Sample) -> Sample:
    """The sample without the driver process (the bench itself is not part of the service)."""
    keep = {pid for pid, label in sample.labels.items() if label != DRIVER}
    return Sample(
        t=sample.t,
        rss={pid: v for pid, v in sample.rss.items() if pid in keep},
        pss={pid: v for pid, v in sample.pss.items() if pid in keep},
        labels={pid: label for pid, label in sample.labels.items() if pid in keep},
    )


def component_group(label: str) -> str:
    """'deployments', 'serve' (proxy, controller), 'ray system', 'driver' or 'other'."""
    if label == DRIVER:
        return "driver"
    if label in ("Serve proxy", "Serve controller"):
        return "serve"
    if label.startswith(("ray: ", "ray worker: ")):
        return "ray system"
    if label.startswith(("other: ", "pid ")):
        return "other"
    return "deployments"


def group_peaks(samples: Iterable[Sample], metric: str = "rss") -> dict[str, int]:
    """Peak bytes per group (``component_group``), each the largest simultaneous sum of its processes."""
    grouped = [
        Sample(
            t=sample.t,
            rss=sample.rss,
            pss=sample.pss,
            labels={pid: component_group(label) for pid, label in sample.labels.items()},
        )
        for sample in samples
    ]
    return peaks(grouped, metric)[0]


def parse_gpu_apps(text: str) -> dict[int, int]:
    """``nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`` -> {pid: MiB}."""
    used: dict[int, int] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2:
            continue
        try:
            pid, mib = int(row[0].strip()), int(float(row[1].strip()))
        except ValueError:  # "[N/A]" or a header
            continue
        used[pid] = used.get(pid, 0) + mib
    return used


# -- sampling ------------------------------------------------------------------------------------


def actor_pid_labels() -> dict[int, str]:
    """pid -> component of every live Serve actor (state API when the dashboard runs, else the GCS table)."""
    labels: dict[int, str] = {}
    try:
        from ray.util.state import list_actors  # noqa: PLC0415

        for actor in list_actors(
            detail=True, filters=[("state", "=", "ALIVE")], raise_on_missing_output=False
        ):
            component = deployment_of_actor(actor.name, actor.class_name)
            if component and actor.pid:
                labels[int(actor.pid)] = component
        return labels
    except Exception:  # no dashboard (include_dashboard=False): read the GCS actor table instead
        from ray._private import state  # noqa: PLC0415

        for actor in state.actors().values():
            component = deployment_of_actor(actor.get("Name"), actor.get("ActorClassName"))
            if component and actor.get("State") == "ALIVE" and actor.get("Pid"):
                labels[int(actor["Pid"])] = component
        return labels


class StackSampler:
    """A thread sampling the memory of this process and its descendants every ``interval_s``."""

    def __init__(self, interval_s: float = 0.2, actor_refresh_s: float = 2.0, pss_every: int = 5) -> None:
        import psutil  # noqa: PLC0415

        self._psutil = psutil
        self.interval_s = interval_s
        self.pss_every = pss_every
        self.actor_refresh_s = actor_refresh_s
        self.samples: list[Sample] = []
        self.gpu: list[dict[str, int]] = []  # per instant: component -> MiB
        self.gpu_note = "no GPU on this machine (nvidia-smi not found)"
        self._nvidia_smi = shutil.which("nvidia-smi")
        if self._nvidia_smi:
            self.gpu_note = "nvidia-smi --query-compute-apps, pids mapped to deployments"
        self._actor_labels: dict[int, str] = {}
        self._actors_read = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self.started = time.perf_counter()

    def start(self) -> StackSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _refresh_actors(self) -> None:
        import ray  # noqa: PLC0415

        if not ray.is_initialized() or time.monotonic() - self._actors_read < self.actor_refresh_s:
            return
        self._actors_read = time.monotonic()
        # The cluster may be starting or stopping: then the process titles are the fallback.
        with contextlib.suppress(Exception):
            self._actor_labels.update(actor_pid_labels())

    def _loop(self) -> None:
        me = self._psutil.Process(os.getpid())
        tick = 0
        while not self._stop.is_set():
            self._refresh_actors()
            # PSS reads /proc/<pid>/smaps_rollup (costly): every pss_every-th sample only.
            with_pss = tick % self.pss_every == 0
            sample = Sample(t=time.perf_counter() - self.started)
            for process in [me, *me.children(recursive=True)]:
                try:
                    with process.oneshot():
                        memory = process.memory_full_info() if with_pss else process.memory_info()
                        label = label_process(
                            process.pid, me.pid, self._actor_labels, process.cmdline(), process.name()
                        )
                except (self._psutil.NoSuchProcess, self._psutil.AccessDenied, self._psutil.ZombieProcess):
                    continue
                sample.rss[process.pid] = memory.rss
                if with_pss:
                    sample.pss[process.pid] = getattr(memory, "pss", memory.rss)
                sample.labels[process.pid] = label
            self.samples.append(sample)
            if self._nvidia_smi:
                self.gpu.append(self._gpu_sample(sample.labels))
            tick += 1
            self._stop.wait(self.interval_s)

    def _gpu_sample(self, labels: dict[int, str]) -> dict[str, int]:
        try:
            text = subprocess.run(
                [self._nvidia_smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return {}
        per_label: dict[str, int] = {}
        for pid, mib in parse_gpu_apps(text).items():
            label = labels.get(pid) or self._actor_labels.get(pid) or f"pid {pid} (not in this stack)"
            per_label[label] = per_label.get(label, 0) + mib
        return per_label


def _run_generation(base_url: str, jwt: Any, timeout_s: float = 900.0) -> dict[str, Any]:
    from api.auth import mint_token  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {mint_token(jwt, 'memory')}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        accepted = client.post("/api/generate", json=ADVANCED)
        accepted.raise_for_status()
        generation_id = accepted.json()["id"]
        deadline = time.monotonic() + timeout_s
        while True:
            status = client.get(f"/api/status/{generation_id}").json()
            if status["status"] in FINISHED or time.monotonic() > deadline:
                status["wall_seconds"] = time.perf_counter() - started
                return status
            time.sleep(0.5)


def bench_memory(profile: str = "tiny", interval_s: float = 0.2, num_cpus: int = 4) -> BenchResult:
    """Peak RSS per deployment and of the whole stack (and GPU MiB per deployment where a GPU exists)."""
    from serve.app import build_app  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415

    args = {
        **tiny_config_args(),
        "profile": profile,
        "output_dir": tempfile.mkdtemp(prefix="scenechain-mem-"),
        "jwt": {"secret": bench_jwt_secret()},
    }
    sampler = StackSampler(interval_s).start()
    marks: dict[str, float] = {}
    try:
        with local_serve_app(lambda: build_app(args), num_cpus=num_cpus) as base_url:
            marks["deployed_s"] = time.perf_counter() - sampler.started
            status = _run_generation(base_url, AppArgs.model_validate(args).jwt)
            marks["generation_done_s"] = time.perf_counter() - sampler.started
            time.sleep(2 * interval_s)  # one more sample after the generation
    finally:
        sampler.stop()
    stack = [without_driver(sample) for sample in sampler.samples]  # the service, not this process
    rss_peak, rss_total_with_driver = peaks(sampler.samples, "rss")
    pss_peak, pss_total_with_driver = peaks(sampler.samples, "pss")
    _, rss_total = peaks(stack, "rss")
    _, pss_total = peaks(stack, "pss")
    peak_t, at_peak = at_total_peak(stack, "rss")
    gpu_peak: dict[str, int] = {}
    for instant in sampler.gpu:
        for label, mib in instant.items():
            gpu_peak[label] = max(gpu_peak.get(label, 0), mib)
    ordered = sorted(rss_peak, key=lambda label: -rss_peak[label])
    samples = {
        label: [
            round(by_label(s.rss, s.labels).get(label, 0) / MIB, 1)
            for s in sampler.samples
            if label in s.labels.values()
        ]
        for label in ordered
    }
    groups = group_peaks(sampler.samples)
    summary: dict[str, float] = {
        "total_peak_rss_mib": rss_total / MIB,
        "total_peak_pss_mib": pss_total / MIB,
        "total_peak_rss_with_driver_mib": rss_total_with_driver / MIB,
        "total_peak_pss_with_driver_mib": pss_total_with_driver / MIB,
        "total_peak_at_s": peak_t,
        "samples": len(sampler.samples),
        "generation_wall_s": float(status.get("wall_seconds", 0.0)),
        **{f"group_peak_rss_mib[{group}]": value / MIB for group, value in groups.items()},
        **{f"peak_rss_mib[{label}]": rss_peak[label] / MIB for label in ordered},
        **{f"peak_pss_mib[{label}]": pss_peak[label] / MIB for label in sorted(pss_peak)},
        **{f"gpu_mib[{label}]": float(mib) for label, mib in sorted(gpu_peak.items())},
        **marks,
    }
    deployments = [label for label in ordered if component_group(label) == "deployments"]
    gpu_words = (
        "GPU MiB: " + ", ".join(f"{label} {mib}" for label, mib in sorted(gpu_peak.items()))
        if gpu_peak
        else sampler.gpu_note
    )
    headline = (
        f"whole {profile} stack peaks at {rss_total / MIB:,.0f} MiB RSS / {pss_total / MIB:,.0f} MiB PSS "
        f"(driver excluded); peak RSS per deployment: "
        + ", ".join(f"{label} {rss_peak[label] / MIB:,.0f}" for label in deployments)
        + f" MiB; Ray system processes {groups.get('ray system', 0) / MIB:,.0f} MiB "
        f"(idle workers included), Serve proxy+controller {groups.get('serve', 0) / MIB:,.0f} MiB; {gpu_words}"
    )
    return BenchResult(
        name="memory",
        title=f"Memory of the whole stack per deployment ({profile}, one advanced generation)",
        unit="MiB RSS per component: median of the 0.2 s samples, whiskers p5-p95 (peaks: headline, JSON)",
        samples=samples,
        summary=summary,
        headline=headline,
        params={
            "profile": profile,
            "request": ADVANCED,
            "interval_s": interval_s,
            "pss_every_n_samples": sampler.pss_every,
            "ray_num_cpus": num_cpus,
            "generation_status": status.get("status"),
            "gpu": sampler.gpu_note,
            "gpu_peak_mib": gpu_peak or "no GPU on this machine",
            "peak_rss_mib": {label: round(rss_peak[label] / MIB, 1) for label in ordered},
            "peak_pss_mib": {label: round(pss_peak[label] / MIB, 1) for label in sorted(pss_peak)},
            "group_peak_rss_mib": {group: round(value / MIB, 1) for group, value in groups.items()},
            "rss_mib_at_total_peak": {
                label: round(value / MIB, 1)
                for label, value in sorted(at_peak.items(), key=lambda kv: -kv[1])
            },
            "note": "RSS counts shared pages in every process that maps them; PSS splits them. Totals are "
            "the largest simultaneous sum over the stack's processes, driver (this bench process) excluded; "
            "per-component peaks may come from different instants. 'ray: idle workers' are Ray's pooled "
            "worker processes (some later become replicas).",
        },
        machine=machine_info(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the memory benchmark and write ``memory.json`` + ``.png``."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny", help="Model profile.")
    parser.add_argument("--out", default="bench/results", help="Results directory.")
    options = parser.parse_args(argv)
    result = bench_memory(options.profile)
    write_result(result, Path(options.out))
    print(result.headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
