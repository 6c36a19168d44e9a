"""cluster.yaml is a valid Ray cluster launcher config with the node types the serve configs need."""

from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[3] / "cluster.yaml"


def test_cluster_yaml_passes_rays_own_launcher_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    # The same two steps `ray up` runs: fill the provider defaults, then check the JSON schema.
    config = prepare_config(yaml.safe_load(CLUSTER_YAML.read_text()))
    validate_config(config)  # raises on a schema violation


def test_cluster_has_a_cpu_head_and_gpu_worker_types() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_types = [name for name, node in node_types.items() if name != config["head_node_type"]]
    assert len(gpu_types) >= 2
    for name in gpu_types:
        assert node_types[name]["max_workers"] >= node_types[name]["min_workers"]
    assert any("pip install" in command and "gpu" in command for command in config["setup_commands"])


def test_a_broken_cluster_yaml_is_rejected() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["available_node_types"]["head"]["node_config_typo"] = {}
    try:
        validate_config(prepare_config(config))
    except Exception as exc:  # ray wraps jsonschema's error in RuntimeError
        assert "node_config_typo" in str(exc)
    else:
        raise AssertionError("an unknown node-type field passed the schema")


def test_the_generator_node_type_has_room_for_flux() -> None:
    """FLUX.1-schnell holds ~34 GB in bf16: the generator's accelerator type is an 80 GB one, in the cluster."""
    from serve.config import AppArgs
    from serve.kuberay import GPU_NODE_SHAPES
    from serve.serve_config import render_profile

    args = AppArgs.model_validate(render_profile("production")["applications"][0]["args"])
    accelerator = args.generator.ray_actor_options["accelerator_type"]
    assert GPU_NODE_SHAPES[accelerator].gpu_memory_gb >= 40
    node_types = yaml.safe_load(CLUSTER_YAML.read_text())["available_node_types"]
    assert any(f"accelerator_type:{accelerator}" in node["resources"] for node in node_types.values())


def test_every_node_syncs_the_model_cache_at_setup() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    assert any("weights.fetch sync" in command for command in config["setup_commands"])
