"""Memory benchmark bookkeeping (no Ray): which component a process is, peaks, nvidia-smi parsing."""

from __future__ import annotations

from bench.memory import (
    DRIVER,
    Sample,
    at_total_peak,
    component_group,
    deployment_of_actor,
    group_peaks,
    label_from_title,
    label_process,
    parse_gpu_apps,
    peaks,
    without_driver,
)

MIB = 1024 * 1024


def test_serve_actors_map_to_their_deployment() -> None:
    assert deployment_of_actor(
        "SERVE_REPLICA::scenechain#Director#ab12cd", "ServeReplica:scenechain:Director"
    ) == ("Director")
    assert deployment_of_actor(None, "ServeReplica:scenechain:Scorer_vqa") == "Scorer_vqa"
    assert deployment_of_actor("SERVE_PROXY_ACTOR-0123abcd", "ProxyActor") == "Serve proxy"
    assert deployment_of_actor("SERVE_CONTROLLER_ACTOR", "ServeController") == "Serve controller"
    assert deployment_of_actor("someone_else", "MyActor") is None


def test_titles_identify_replicas_while_starting_and_running() -> None:
    starting = [
        "ray::SERVE_REPLICA::scenechain#Scorer_clipscore#5zhh:ServeReplica:scenechain:Scorer_clipscore"
    ]
    assert label_from_title(starting, "ray::SERVE_REPL") == "Scorer_clipscore"
    assert label_from_title(["ray::ServeReplica:scenechain:Generator.handle_request"], "x") == "Generator"
    assert label_from_title(["ray::ProxyActor"], "ray::ProxyActor") == "Serve proxy"
    assert label_from_title(["ray::IDLE"], "ray::IDLE") == "ray: idle workers"
    assert label_from_title(["ray::SomeTask"], "ray::SomeTask") == "ray worker: SomeTask"


def test_titles_identify_ray_system_processes() -> None:
    assert label_from_title(["/venv/ray/core/src/ray/gcs/gcs_server", "--log_dir=/tmp"], "gcs_server") == (
        "ray: gcs_server"
    )
    assert label_from_title(["/venv/ray/core/src/ray/raylet/raylet", "--x"], "raylet") == "ray: raylet"
    python = ["/venv/bin/python", "-u", "/venv/ray/_private/log_monitor.py", "--x"]
    assert label_from_title(python, "python") == "ray: log monitor"
    assert (
        label_from_title(["/venv/bin/python", "/venv/ray/dashboard/dashboard.py"], "python")
        == "ray: dashboard"
    )
    agent = ["/venv/bin/python", "-u", "/venv/ray/_private/runtime_env/agent/main.py", "--node-ip=x"]
    assert label_from_title(agent, "python") == "ray: runtime env agent"
    worker = ["/venv/bin/python", "-u", "/venv/ray/_private/workers/default_worker.py", "--node-ip=x"]
    assert label_from_title(worker, "python") == "ray: idle workers"
    assert label_from_title(["/venv/bin/python", "/work/app/main.py"], "python") == "other: main.py"
    assert label_from_title(["/usr/bin/sleep", "5"], "sleep") == "other: sleep"


def test_driver_and_actor_table_win_over_titles() -> None:
    actors = {42: "Director"}
    assert label_process(7, 7, actors, ["python"], "python") == DRIVER
    assert label_process(42, 7, actors, ["ray::IDLE"], "ray::IDLE") == "Director"
    assert label_process(43, 7, actors, ["ray::IDLE"], "ray::IDLE") == "ray: idle workers"


def test_peaks_per_component_and_of_the_simultaneous_total() -> None:
    labels = {1: "Generator", 2: "ray: idle workers", 3: "ray: idle workers"}
    first = Sample(t=0.0, rss={1: 100 * MIB, 2: 50 * MIB, 3: 50 * MIB}, labels=labels)
    second = Sample(t=0.2, rss={1: 300 * MIB, 2: 10 * MIB}, labels=labels)
    per_component, total = peaks([first, second])
    assert per_component == {"Generator": 300 * MIB, "ray: idle workers": 100 * MIB}
    # The total is one instant's sum (310), not the sum of the component peaks (400).
    assert total == 310 * MIB


def test_peaks_skip_samples_without_the_metric() -> None:
    labels = {1: "LLM"}
    samples = [Sample(t=0, rss={1: 5}, pss={1: 3}, labels=labels), Sample(t=1, rss={1: 9}, labels=labels)]
    assert peaks(samples, "pss") == ({"LLM": 3}, 3)


def test_nvidia_smi_rows_sum_per_pid_and_skip_junk() -> None:
    text = "1234, 2048\n1234, 512\n5678, [N/A]\n\n9999, 100\n"
    assert parse_gpu_apps(text) == {1234: 2560, 9999: 100}


def test_the_driver_is_left_out_of_the_stack_and_groups_peak_together() -> None:
    labels = {1: DRIVER, 2: "Generator", 3: "LLM", 4: "ray: raylet", 5: "Serve proxy"}
    first = Sample(t=0.0, rss={1: 500, 2: 100, 3: 10, 4: 5, 5: 1}, labels=labels)
    second = Sample(t=0.2, rss={1: 100, 2: 10, 3: 200, 4: 5, 5: 1}, labels=labels)
    stack = [without_driver(first), without_driver(second)]
    assert 1 not in stack[0].rss and 1 not in stack[0].labels
    assert peaks(stack)[1] == 216  # second instant: 10 + 200 + 5 + 1
    assert at_total_peak(stack) == (0.2, {"Generator": 10, "LLM": 200, "ray: raylet": 5, "Serve proxy": 1})
    # deployments peak together at 210 (second instant), not 100 + 200
    assert group_peaks([first, second]) == {"driver": 500, "deployments": 210, "ray system": 5, "serve": 1}
    assert [component_group(x) for x in ("Director", "ray worker: Foo", "other: x", "Serve controller")] == [
        "deployments",
        "ray system",
        "other",
        "serve",
    ]
