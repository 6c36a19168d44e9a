"""deploy/kuberay/rayservice.yaml: valid for KubeRay's RayService CRD, equal to what serve.kuberay renders
from the production AppArgs, secrets only by reference, GPU groups that fit the deployments."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve.config import AppArgs
from serve.kuberay import (
    GPU_NODE_SHAPES,
    KubeRaySettings,
    deployment_settings,
    gpu_groups,
    main,
    render_profile_rayservice,
)
from serve.serve_config import render_profile
from weights.profiles import get_profile

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "deploy" / "kuberay" / "rayservice.yaml"
SCHEMA = REPO / "tests" / "data" / "kuberay-v1.7.0-rayservice-v1.schema.json"
# FLUX.1-schnell's weights in bf16 (~34 GB) plus activations: the generator needs at least this much.
FLUX_GPU_MEMORY_GB = 40


def strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected: the API server would silently prune them."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def validator() -> Any:
    import jsonschema

    schema = strict(json.loads(SCHEMA.read_text())["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = document["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]] + [
        group["template"] for group in cluster["workerGroupSpecs"]
    ]
    return [c for pod in pods for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])]


def test_the_manifest_passes_the_rayservice_crd_schema(validator: Any) -> None:
    errors = sorted(validator.iter_errors(manifest()), key=lambda error: list(error.path))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]]


def test_a_broken_manifest_is_rejected(validator: Any) -> None:
    document = manifest()
    broken = copy.deepcopy(document)
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3  # typo
    assert any("maxReplica" in error.message for error in validator.iter_errors(broken))
    broken = copy.deepcopy(document)
    del broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["groupName"]
    assert any("groupName" in error.message for error in validator.iter_errors(broken))


def test_the_committed_manifest_equals_what_the_renderer_produces() -> None:
    assert manifest() == render_profile_rayservice("production"), (
        "deploy/kuberay/rayservice.yaml drifted; regenerate: "
        "python -m serve.kuberay --profile production > deploy/kuberay/rayservice.yaml"
    )


def test_serve_config_v2_is_the_production_serve_config() -> None:
    from ray.serve.schema import ServeDeploySchema

    serve_config = yaml.safe_load(manifest()["spec"]["serveConfigV2"])
    assert serve_config == yaml.safe_load((REPO / "configs" / "production.yaml").read_text())
    assert serve_config == render_profile("production")
    ServeDeploySchema.model_validate(serve_config)


def test_secrets_come_from_a_kubernetes_secret_never_a_literal() -> None:
    document = manifest()
    for container in containers(document):
        env = {item["name"]: item for item in container["env"]}
        for name in ("SCENECHAIN_JWT_SECRET", "DATABASE_URL"):
            assert "value" not in env[name], f"{container['name']}: {name} is a literal"
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "scenechain-secrets"
        assert env["HF_HUB_OFFLINE"]["value"] == "1"
        assert env["SCENECHAIN_MODEL_DIR"]["value"] == "/models"
    # every literal env value is a path or a flag: nothing secret-shaped
    literals = {
        item["value"] for container in containers(document) for item in container["env"] if "value" in item
    }
    assert literals == {"/models", "1"}


def test_gpu_worker_groups_fit_every_gpu_deployment() -> None:
    args = AppArgs.model_validate(render_profile("production")["applications"][0]["args"])
    cluster = manifest()["spec"]["rayClusterConfig"]
    groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"  # CPU deployments only
    for name, settings in deployment_settings(args).items():
        options = settings.ray_actor_options
        if not options.get("num_gpus"):
            continue
        accelerator = options["accelerator_type"]
        group = groups[f"gpu-{accelerator.lower()}"]
        assert group["resources"][f"accelerator_type:{accelerator}"] == "1", name
        (worker,) = group["template"]["spec"]["containers"]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # at the deployments' max replicas, the GPU shares fit the groups' max pods (one GPU each)
    for accelerator, (low, high, _) in gpu_groups(args).items():
        group = groups[f"gpu-{accelerator.lower()}"]
        assert (group["minReplicas"], group["maxReplicas"]) == (low, high)
    assert gpu_groups(args)["H100"][:2] == (2, 5)  # generator 1..3 + LLM 1..2
    assert gpu_groups(args)["A10G"][:2] == (1, 3)  # 4 scorers x 0.25 x 1..3


def test_the_generator_runs_on_a_gpu_with_room_for_flux() -> None:
    assert get_profile("production").model("diffusion").source == "black-forest-labs/FLUX.1-schnell"
    args = AppArgs.model_validate(render_profile("production")["applications"][0]["args"])
    accelerator = args.generator.ray_actor_options["accelerator_type"]
    assert GPU_NODE_SHAPES[accelerator].gpu_memory_gb >= FLUX_GPU_MEMORY_GB
    # and cluster.yaml has that accelerator, with enough nodes for the generator's max replicas
    cluster = yaml.safe_load((REPO / "cluster.yaml").read_text())
    node_types = [
        node
        for node in cluster["available_node_types"].values()
        if f"accelerator_type:{accelerator}" in node["resources"]
    ]
    assert node_types and sum(node["max_workers"] for node in node_types) >= gpu_groups(args)[accelerator][1]


def test_the_s3_model_cache_variant_syncs_per_node(validator: Any) -> None:
    settings = KubeRaySettings(model_s3="s3://scenechain-models/cache", image="example.org/scenechain:1.0")
    document = render_profile_rayservice("production", settings)
    assert not list(validator.iter_errors(document))
    for container in containers(document):
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["SCENECHAIN_MODEL_S3"] == "s3://scenechain-models/cache"
        assert container["image"] == "example.org/scenechain:1.0"
    head = document["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert head["initContainers"][0]["command"] == ["python", "-m", "weights.fetch", "sync"]
    assert head["volumes"][0]["hostPath"]["path"] == "/var/lib/scenechain/models"


def test_the_cli_prints_the_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "production", "--image", "example.org/sc:2"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["kind"] == "RayService" and document["apiVersion"] == "ray.io/v1"
    assert {c["image"] for c in containers(document)} == {"example.org/sc:2"}
