"""configs/*.yaml: Ray Serve's own schema accepts them, they equal what serve.serve_config renders
(so they cannot drift from AppArgs), and their args build the application with the stated options."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve.config import SCORER_ROLES, AppArgs, DeploymentSettings
from serve.serve_config import SERVE_PROFILES, main, render_profile

REPO = Path(__file__).resolve().parents[3]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def walk_deployments(app: Any) -> dict[str, Any]:
    """Every deployment bound in an Application graph, by name."""
    from ray.serve import Application

    found: dict[str, Any] = {}
    stack = [app]

    def collect(value: Any) -> None:
        if isinstance(value, Application):
            stack.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    while stack:
        deployment = stack.pop()._bound_deployment
        if deployment.name not in found:
            found[deployment.name] = deployment
            collect(deployment.init_args)
            collect(deployment.init_kwargs)
    return found


def settings_by_deployment(args: AppArgs) -> dict[str, DeploymentSettings]:
    """Which AppArgs settings each deployment name must carry."""
    settings = {
        "Ingress": args.ingress,
        "Director": args.director,
        "Enhancer": args.enhancer_deployment,
        "Generator": args.generator,
        "LLM": args.llm,
    }
    settings.update({f"Scorer_{name}": args.scorer_deployment(name) for name in SCORER_ROLES})
    return settings


def buildable_args(
    document: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    """The file's args, made buildable on this machine (a local DB; our LLM deployment without vLLM)
    with the environment a deployer sets (the file holds no secret: build_app refuses to start without one)."""
    args = dict(document["applications"][0]["args"])
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", secrets.token_urlsafe(48))
    if args.get("output_dir", "").startswith("output"):
        args["output_dir"] = str(tmp_path / "output")
    llm_backend = AppArgs.model_validate(args).model_spec("llm").options.get("backend")
    if llm_backend == "ray-serve-llm" and importlib.util.find_spec("vllm") is None:
        # ray.serve.llm needs vLLM (the gpu extra); every other deployment is still checked.
        args["model_overrides"] = {"llm": {"options": {"backend": "transformers"}}}
    return args


def test_there_is_a_config_per_serve_profile() -> None:
    assert sorted(path.stem for path in CONFIGS) == sorted(SERVE_PROFILES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_passes_ray_serves_own_schema(path: Path) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import RayActorOptionsSchema, ServeDeploySchema

    document = load(path)
    schema = ServeDeploySchema.model_validate(document)
    (application,) = schema.applications
    assert application.import_path == "serve.app:build_app"
    args = AppArgs.model_validate(application.args)  # extra="forbid": a typo fails here
    # the free-form dicts inside AppArgs must be valid for Serve too
    for name, settings in settings_by_deployment(args).items():
        RayActorOptionsSchema.model_validate(settings.ray_actor_options)
        if settings.autoscaling_config is not None:
            config = AutoscalingConfig.model_validate(settings.autoscaling_config)
            assert (
                config.min_replicas <= (config.initial_replicas or config.min_replicas) <= config.max_replicas
            )
            assert settings.num_replicas == "auto", f"{name}: autoscaling_config needs num_replicas: auto"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_file_equals_what_the_generator_renders(path: Path) -> None:
    assert load(path) == render_profile(path.stem), (
        f"{path.name} drifted; regenerate: python -m serve.serve_config --profile {path.stem} > {path}"
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_args_build_the_app_with_the_stated_options(
    path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve.app import build_app

    args = buildable_args(load(path), monkeypatch, tmp_path)
    deployments = walk_deployments(build_app(args))
    expected = settings_by_deployment(AppArgs.model_validate(args))
    if "LLM" not in deployments:  # ray.serve.llm (vLLM installed) names and sizes its own deployment
        llm_names = [name for name in deployments if "LLM" in name]
        assert len(llm_names) == 1, sorted(deployments)
        deployments.pop(llm_names[0])
        expected.pop("LLM")
    assert sorted(deployments) == sorted(expected)
    for name, settings in expected.items():
        deployment = deployments[name]
        options = settings.serve_options()
        for key, value in options["ray_actor_options"].items():
            assert deployment.ray_actor_options.get(key) == value, (name, key)
        if settings.max_ongoing_requests is not None:
            assert deployment.max_ongoing_requests == settings.max_ongoing_requests, name
        if settings.max_queued_requests is not None:
            assert deployment.max_queued_requests == settings.max_queued_requests, name
        if settings.autoscaling_config is not None:
            autoscaling = deployment._deployment_config.autoscaling_config
            for key, value in settings.autoscaling_config.items():
                assert getattr(autoscaling, key) == value, (name, key)
        if settings.health_check_period_s is not None:
            assert deployment._deployment_config.health_check_period_s == settings.health_check_period_s


def test_every_deployment_has_a_bounded_queue() -> None:
    for name in SERVE_PROFILES:
        args = AppArgs.model_validate(render_profile(name)["applications"][0]["args"])
        for deployment, settings in settings_by_deployment(args).items():
            assert settings.max_queued_requests is not None and settings.max_queued_requests > 0, (
                f"{name}/{deployment}: an unbounded queue never answers 503"
            )


def test_production_gpu_shares_and_placement_fit_cluster_yaml() -> None:
    args = AppArgs.model_validate(render_profile("production")["applications"][0]["args"])
    cluster = yaml.safe_load((REPO / "cluster.yaml").read_text())
    node_types = cluster["available_node_types"]
    # GPUs per accelerator type at the cluster's max size (1 GPU per worker unless resources say more)
    capacity: dict[str, float] = {}
    for node in node_types.values():
        for resource in node.get("resources", {}):
            if resource.startswith("accelerator_type:"):
                gpus = node["resources"].get("GPU", 1)
                capacity[resource.split(":", 1)[1]] = gpus * node.get("max_workers", 0)
    demand: dict[str, float] = {}
    for name, settings in settings_by_deployment(args).items():
        actor = settings.ray_actor_options
        if name.startswith("Scorer_"):
            assert actor["num_gpus"] == 0.25
        if name in ("Generator", "LLM"):
            assert actor["num_gpus"] == 1.0
        if actor.get("num_gpus"):
            accelerator = actor.get("accelerator_type")
            assert accelerator in capacity, f"{name}: accelerator_type {accelerator!r} not in cluster.yaml"
            demand[accelerator] = (
                demand.get(accelerator, 0) + actor["num_gpus"] * settings.autoscaling_config["max_replicas"]
            )
        else:
            assert not actor.get("accelerator_type"), f"{name}: CPU deployments stay off GPU nodes"
    for accelerator, gpus in demand.items():
        assert gpus <= capacity[accelerator], f"{accelerator}: max replicas need {gpus} GPUs > {capacity}"


def test_the_generator_cli_prints_a_config_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    from ray.serve.schema import ServeDeploySchema

    assert main(["--profile", "production", "--output-dir", "s3://my-bucket/sc"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    ServeDeploySchema.model_validate(document)
    assert document["applications"][0]["args"]["output_dir"] == "s3://my-bucket/sc"
    assert document["applications"][0]["runtime_env"]["worker_process_setup_hook"] == (
        "store.logging_setup.install"
    )


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown serve profile"):
        render_profile("huge")
