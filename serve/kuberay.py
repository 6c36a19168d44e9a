"""A KubeRay ``RayService`` (ray.io/v1) rendered from the same ``AppArgs`` as ``configs/<profile>.yaml``.

``serveConfigV2`` is the Serve config ``serve.serve_config.render_profile`` makes, verbatim. The Ray
cluster around it follows from the deployments' resources: a CPU head (ingress, director, enhancer:
the deployments without GPUs), and one GPU worker group per ``accelerator_type`` the deployments ask
for, sized so the deployments' replica bounds fit (``min``/``max`` replicas x GPU share, rounded up
to whole one-GPU pods). Secrets come from a Kubernetes Secret (``secretKeyRef``), never a literal; the
model cache (``scenechain fetch-models``) is a shared volume mounted read-only at ``SCENECHAIN_MODEL_DIR``
with the hub offline, or, with ``model_s3``, a node-local dir synced from S3 (``weights.fetch``).

    python -m serve.kuberay --profile production > deploy/kuberay/rayservice.yaml

``tests/unit/serve/test_kuberay.py`` checks the committed manifest equals this and validates it against
the RayService CRD's OpenAPI schema (KubeRay v1.7.0, vendored in tests/data).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from serve.config import SCORER_ROLES, AppArgs, DeploymentSettings
from serve.serve_config import SERVE_PROFILES, profile_app_args, render_profile, to_yaml
from weights.fetch import MODEL_S3_ENV


class GpuNodeShape(BaseModel):
    """One GPU worker pod: the accelerator's memory, the pod's CPU/memory, the node label that finds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_memory_gb: int = Field(description="Memory of one GPU of this type, GB.")
    cpu: str = Field(description="CPU request/limit of the pod (Kubernetes quantity).")
    memory: str = Field(description="Memory request/limit of the pod (weights pass through host RAM).")
    gpu_product: str = Field(description="nvidia.com/gpu.product node label (NVIDIA GPU feature discovery).")


# Ray's accelerator_type names (ray.util.accelerators) -> pod shape; configs as data.
GPU_NODE_SHAPES: dict[str, GpuNodeShape] = {
    "H100": GpuNodeShape(gpu_memory_gb=80, cpu="14", memory="192Gi", gpu_product="NVIDIA-H100-80GB-HBM3"),
    "A100-80G": GpuNodeShape(gpu_memory_gb=80, cpu="10", memory="128Gi", gpu_product="NVIDIA-A100-SXM4-80GB"),
    "A10G": GpuNodeShape(gpu_memory_gb=24, cpu="7", memory="28Gi", gpu_product="NVIDIA-A10G"),
}


class KubeRaySettings(BaseModel):
    """What the manifest needs beyond the app: image, Secret names, the model cache, the head pod."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="scenechain", description="RayService name (and label).")
    image: str = Field(
        default="registry.example.com/scenechain:latest",
        description="Image with the repo installed as .[gpu,postgres,s3] (same Ray version as rayVersion).",
    )
    secret_name: str = Field(
        default="scenechain-secrets", description="Kubernetes Secret with the keys below."
    )
    jwt_secret_key: str = Field(default="jwt-secret", description="Secret key holding SCENECHAIN_JWT_SECRET.")
    database_url_key: str = Field(default="database-url", description="Secret key holding DATABASE_URL.")
    service_account: str = Field(
        default="scenechain",
        description="Pods' service account (S3 access through the cloud's workload identity).",
    )
    model_dir: str = Field(default="/models", description="SCENECHAIN_MODEL_DIR inside the pods.")
    model_claim: str = Field(
        default="scenechain-models",
        description="PersistentVolumeClaim (ReadOnlyMany/ReadWriteMany) holding the fetch-models cache.",
    )
    model_s3: str | None = Field(
        default=None,
        description="s3:// prefix of the cache instead of the claim: synced into a node-local dir per node.",
    )
    head_cpu: str = Field(
        default="8", description="Head pod CPU (ingress, director, enhancer, Serve controller)."
    )
    head_memory: str = Field(default="32Gi", description="Head pod memory.")
    idle_timeout_s: int = Field(default=600, description="Autoscaler: idle seconds before a worker pod goes.")


def deployment_settings(args: AppArgs) -> dict[str, DeploymentSettings]:
    """Every deployment's settings, by deployment name."""
    settings = {
        "Ingress": args.ingress,
        "Director": args.director,
        "Enhancer": args.enhancer_deployment,
        "Generator": args.generator,
        "LLM": args.llm,
    }
    settings.update({f"Scorer_{name}": args.scorer_deployment(name) for name in SCORER_ROLES})
    return settings


def _replica_bounds(settings: DeploymentSettings) -> tuple[int, int]:
    """(min, max) replicas: the autoscaling bounds, or a fixed count (1 when unset)."""
    if settings.autoscaling_config is not None:
        config = settings.autoscaling_config
        return int(config.get("min_replicas", 1)), int(config.get("max_replicas", 1))
    fixed = settings.num_replicas if isinstance(settings.num_replicas, int) else 1
    return fixed, fixed


def gpu_groups(args: AppArgs) -> dict[str, tuple[int, int, list[str]]]:
    """accelerator_type -> (min pods, max pods, deployments): one-GPU pods that fit the replica bounds."""
    demand: dict[str, list[Any]] = {}
    for name, settings in deployment_settings(args).items():
        options = settings.ray_actor_options
        gpus = float(options.get("num_gpus") or 0)
        if not gpus:
            continue
        accelerator = options.get("accelerator_type")
        if accelerator not in GPU_NODE_SHAPES:
            raise ValueError(f"{name}: accelerator_type {accelerator!r} has no pod shape in GPU_NODE_SHAPES")
        low, high = _replica_bounds(settings)
        entry = demand.setdefault(accelerator, [0.0, 0.0, []])
        entry[0] += gpus * low
        entry[1] += gpus * high
        entry[2].append(name)
    return {
        accelerator: (math.ceil(low - 1e-9), math.ceil(high - 1e-9), names)
        for accelerator, (low, high, names) in sorted(demand.items())
    }


def _env(settings: KubeRaySettings) -> list[dict[str, Any]]:
    def secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": settings.secret_name, "key": key}}}

    env = [
        secret("SCENECHAIN_JWT_SECRET", settings.jwt_secret_key),
        secret("DATABASE_URL", settings.database_url_key),
        {"name": "SCENECHAIN_MODEL_DIR", "value": settings.model_dir},
        # replicas load from the cache only: a missing file fails at start instead of downloading
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
    ]
    if settings.model_s3:
        env.append({"name": MODEL_S3_ENV, "value": settings.model_s3})
    return env


def _model_volume(settings: KubeRaySettings) -> dict[str, Any]:
    if settings.model_s3:
        # one copy per node: every replica on the node syncs into (and finds) the same host dir
        return {
            "name": "models",
            "hostPath": {"path": "/var/lib/scenechain/models", "type": "DirectoryOrCreate"},
        }
    return {"name": "models", "persistentVolumeClaim": {"claimName": settings.model_claim, "readOnly": True}}


def _pod_template(
    settings: KubeRaySettings, container: dict[str, Any], extra_spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    container = {
        "name": container["name"],
        "image": settings.image,
        "env": _env(settings),
        "volumeMounts": [
            {"name": "models", "mountPath": settings.model_dir, "readOnly": not settings.model_s3},
            {"name": "ray-logs", "mountPath": "/tmp/ray"},
            {"name": "dshm", "mountPath": "/dev/shm"},  # torch/vLLM workers share tensors through it
        ],
        **container,
    }
    init: dict[str, Any] = {}
    if settings.model_s3:
        # before Ray starts: the whole cache on this node (vLLM loads the path the head resolved)
        sync = {
            "name": "sync-models",
            "image": settings.image,
            "command": ["python", "-m", "weights.fetch", "sync"],
            "env": container["env"],
            "volumeMounts": [{"name": "models", "mountPath": settings.model_dir}],
        }
        init = {"initContainers": [sync]}
    return {
        "metadata": {"labels": {"app.kubernetes.io/name": settings.name}},
        "spec": {
            "serviceAccountName": settings.service_account,
            **init,
            "containers": [container],
            "volumes": [
                _model_volume(settings),
                {"name": "ray-logs", "emptyDir": {}},
                {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            ],
            **(extra_spec or {}),
        },
    }


def _quantities(cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    amounts = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def render_rayservice(
    args: AppArgs, serve_config: dict[str, Any], settings: KubeRaySettings | None = None
) -> dict[str, Any]:
    """The RayService manifest running ``serve_config`` (rendered from ``args``) on a cluster sized from ``args``."""
    settings = settings or KubeRaySettings()
    head = {
        "rayStartParams": {"num-gpus": "0", "dashboard-host": "0.0.0.0"},
        "template": _pod_template(
            settings,
            {
                "name": "ray-head",
                "resources": _quantities(settings.head_cpu, settings.head_memory),
                "ports": [
                    {"name": "gcs", "containerPort": 6379},
                    {"name": "dashboard", "containerPort": 8265},
                    {"name": "client", "containerPort": 10001},
                    {"name": "serve", "containerPort": 8000},
                ],
            },
        ),
    }
    workers = []
    for accelerator, (low, high, _) in gpu_groups(args).items():
        shape = GPU_NODE_SHAPES[accelerator]
        extra_spec = {
            "nodeSelector": {"nvidia.com/gpu.product": shape.gpu_product},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
        workers.append(
            {
                "groupName": f"gpu-{accelerator.lower()}",
                "replicas": low,
                "minReplicas": low,
                "maxReplicas": high,
                "idleTimeoutSeconds": settings.idle_timeout_s,
                # the autoscaler matches Serve's accelerator_type requests to this group before a pod exists
                "resources": {"GPU": "1", f"accelerator_type:{accelerator}": "1"},
                "rayStartParams": {},
                "template": _pod_template(
                    settings,
                    {"name": "ray-worker", "resources": _quantities(shape.cpu, shape.memory, gpus=1)},
                    extra_spec,
                ),
            }
        )
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": settings.name, "labels": {"app.kubernetes.io/name": settings.name}},
        "spec": {
            "serveConfigV2": to_yaml(serve_config),
            "rayClusterConfig": {
                "rayVersion": version("ray"),
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {
                    "idleTimeoutSeconds": settings.idle_timeout_s,
                    "upscalingMode": "Default",
                },
                "headGroupSpec": head,
                "workerGroupSpecs": workers,
            },
        },
    }


def render_profile_rayservice(
    name: str, settings: KubeRaySettings | None = None, **overrides: Any
) -> dict[str, Any]:
    """The RayService of serve profile ``name`` (what ``deploy/kuberay/rayservice.yaml`` holds for production)."""
    args = profile_app_args(name, **overrides)
    return render_rayservice(args, render_profile(name, **overrides), settings)


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (serveConfigV2) as literal blocks, readable in a diff."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def manifest_yaml(manifest: dict[str, Any], *, header: str = "") -> str:
    """YAML text of a manifest in its key order, ``header`` as leading comment lines."""
    body = yaml.dump(manifest, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False, width=110)
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*lines, body]) if lines else body


def file_header(name: str) -> str:
    """The comment block at the top of the committed manifest."""
    return "\n".join(
        [
            f"KubeRay RayService, serve profile '{name}' (serveConfigV2 = configs/{name}.yaml's content).",
            f"GENERATED by `python -m serve.kuberay --profile {name} > deploy/kuberay/rayservice.yaml`;",
            "edit SERVE_PROFILES / serve/kuberay.py, not this file (tests/unit/serve/test_kuberay.py compares them).",
            "Needs: Secret scenechain-secrets (jwt-secret, database-url), PVC scenechain-models filled by",
            "`scenechain fetch-models`, and your image; see docs/deploy.md (KubeRay).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print a profile's RayService YAML to stdout."""
    parser = argparse.ArgumentParser(prog="python -m serve.kuberay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default="production", choices=sorted(SERVE_PROFILES), help="Serve profile."
    )
    parser.add_argument("--image", default=None, help="Container image (default: a placeholder to replace).")
    parser.add_argument("--model-s3", default=None, help="s3:// model cache prefix instead of the PVC.")
    parser.add_argument("--output-dir", default=None, help="Override output_dir (e.g. s3://bucket/prefix).")
    options = parser.parse_args(argv)
    fields = {"image": options.image, "model_s3": options.model_s3}
    settings = KubeRaySettings(**{key: value for key, value in fields.items() if value is not None})
    manifest = render_profile_rayservice(options.profile, settings, output_dir=options.output_dir)
    sys.stdout.write(manifest_yaml(manifest, header=file_header(options.profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
