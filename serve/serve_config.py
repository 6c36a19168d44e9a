"""Ray Serve config files (the YAML ``serve deploy`` takes), rendered from ``AppArgs`` so they cannot drift.

Every deployment setting lives in the application's ``args`` (``AppArgs``: ``ingress``,
``director``, ``generator``, ``scorer``/``scorer_overrides``, ``enhancer_deployment``, ``llm``), and
``serve.app.build_app`` is the one place that turns them into ``.options(...)``; the file adds only
what belongs to the Serve instance (HTTP, proxies, logging, the workers' set-up hook).

    python -m serve.serve_config --profile production > configs/production.yaml
    python -m serve.serve_config --profile production --output-dir s3://my-bucket/scenechain > my.yaml

``tests/unit/serve/test_config_files.py`` checks each committed ``configs/*.yaml`` equals what this
renders, parses as Ray Serve's ``ServeDeploySchema``, and builds with ``build_app``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from serve.config import AppArgs
from store.logging_setup import SETUP_HOOK

IMPORT_PATH = "serve.app:build_app"

# Autoscaling shared by the model deployments of the production profile (seconds / requests).
_GPU_AUTOSCALING: dict[str, Any] = {
    "upscale_delay_s": 30,
    "downscale_delay_s": 600,  # model replicas are slow to start: keep them through short lulls
    "metrics_interval_s": 10,
    "look_back_period_s": 30,
}

# The deployment settings and app args of each serve profile, as data (what AppArgs validates).
SERVE_PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {
        "description": "Tiny forged models on CPU; one logical GPU (`ray start --head --num-gpus=1`).",
        "instance": {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8000}},
        "log_encoding": "TEXT",
        "args": {
            "profile": "tiny",
            "output_dir": "output",
            "max_concurrent_generations": 4,
            "generator": {
                "ray_actor_options": {"num_gpus": 0.25, "num_cpus": 0.25},
                "max_ongoing_requests": 16,
                "max_queued_requests": 64,
            },
            "scorer": {
                "ray_actor_options": {"num_gpus": 0.125, "num_cpus": 0.25},
                "max_queued_requests": 128,
            },
            "ingress": {
                "max_ongoing_requests": 64,
                "max_queued_requests": 128,
                # Serve's own proxy 503s (ingress queue full) carry Retry-After too
                "backpressure_config": {"status_code": 503, "retry_after_s": 5},
            },
            # bounded queues everywhere: an overloaded app answers 503 instead of queueing forever
            "director": {"max_queued_requests": 256},
            "enhancer_deployment": {"max_queued_requests": 128},
            "llm": {"max_queued_requests": 128},
            "generator_batch": {"max_batch_size": 4, "batch_wait_timeout_s": 0.05},
            "scorer_batch": {"max_batch_size": 8, "batch_wait_timeout_s": 0.02},
        },
    },
    "production": {
        "description": (
            "Real checkpoints on the cluster.yaml GPU cluster: CPU head (ingress, director, enhancer), "
            "H100 80 GB workers (generator and LLM, 1 GPU each), A10G workers (scorers, 0.25 GPU each)."
        ),
        "instance": {
            "proxy_location": "EveryNode",
            "http_options": {
                "host": "0.0.0.0",
                "port": 8000,
                "request_timeout_s": 120,
                "keep_alive_timeout_s": 75,
            },
        },
        "log_encoding": "JSON",
        "args": {
            "profile": "production",
            # Every node must see one store; the DB URL (a secret) comes from $DATABASE_URL on the nodes.
            "output_dir": "s3://scenechain-artifacts/production",
            "max_concurrent_generations": 32,
            "ingress": {
                "num_replicas": "auto",
                "backpressure_config": {"status_code": 503, "retry_after_s": 5},
                "autoscaling_config": {
                    "min_replicas": 2,
                    "initial_replicas": 2,
                    "max_replicas": 8,
                    "target_ongoing_requests": 16,
                    "upscale_delay_s": 10,
                    "downscale_delay_s": 300,
                },
                "max_ongoing_requests": 64,
                "max_queued_requests": 256,
                "health_check_period_s": 10,
                "ray_actor_options": {"num_cpus": 1, "num_gpus": 0},
            },
            # Two Directors for availability: each generation is leased (DB claim + heartbeats) by the
            # replica running it, and a survivor's recovery pass takes over a dead one's. Fixed, not
            # autoscaled: a Director's load is long-lived tasks, not ongoing requests.
            "director": {
                "num_replicas": 2,
                "max_ongoing_requests": 256,
                "max_queued_requests": 1024,
                "health_check_period_s": 10,
                "ray_actor_options": {"num_cpus": 1, "num_gpus": 0},
            },
            "enhancer_deployment": {
                "num_replicas": "auto",
                "autoscaling_config": {
                    "min_replicas": 1,
                    "initial_replicas": 1,
                    "max_replicas": 8,
                    "target_ongoing_requests": 8,
                    "upscale_delay_s": 10,
                    "downscale_delay_s": 300,
                },
                "max_ongoing_requests": 32,
                "max_queued_requests": 256,
                "health_check_period_s": 10,
                "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0},
            },
            "llm": {
                "num_replicas": "auto",
                "autoscaling_config": {
                    "min_replicas": 1,
                    "initial_replicas": 1,
                    "max_replicas": 2,
                    "target_ongoing_requests": 32,
                    **_GPU_AUTOSCALING,
                },
                "max_ongoing_requests": 64,
                "max_queued_requests": 256,
                "health_check_period_s": 30,
                "ray_actor_options": {"num_cpus": 4, "num_gpus": 1.0, "accelerator_type": "H100"},
            },
            "generator": {
                "num_replicas": "auto",
                "autoscaling_config": {
                    "min_replicas": 1,
                    "initial_replicas": 1,
                    "max_replicas": 3,
                    "target_ongoing_requests": 4,  # one full @serve.batch per replica
                    **_GPU_AUTOSCALING,
                },
                "max_ongoing_requests": 8,
                "max_queued_requests": 128,
                "health_check_period_s": 30,
                # FLUX.1-schnell in bf16 holds ~34 GB of weights: an 80 GB GPU (a 24 GB A10G cannot)
                "ray_actor_options": {"num_cpus": 2, "num_gpus": 1.0, "accelerator_type": "H100"},
            },
            # Each of the four scorers: a quarter of an A10G, so one node holds a full scorer set.
            # At max scale: 4 scorers x 3 x 0.25 = 3 A10G; 3 generator + 2 LLM = 5 H100 (cluster.yaml max_workers).
            "scorer": {
                "num_replicas": "auto",
                "autoscaling_config": {
                    "min_replicas": 1,
                    "initial_replicas": 1,
                    "max_replicas": 3,
                    "target_ongoing_requests": 8,  # one full @serve.batch per replica
                    **_GPU_AUTOSCALING,
                },
                "max_ongoing_requests": 16,
                "max_queued_requests": 256,
                "health_check_period_s": 30,
                "ray_actor_options": {"num_cpus": 1, "num_gpus": 0.25, "accelerator_type": "A10G"},
            },
            "generator_batch": {"max_batch_size": 4, "batch_wait_timeout_s": 0.05},
            "scorer_batch": {"max_batch_size": 8, "batch_wait_timeout_s": 0.02},
        },
    },
}

# The toy world (what `make run` starts): tiny's single-machine layout, the toy profile's trained models.
SERVE_PROFILES["toy"] = {
    **copy.deepcopy(SERVE_PROFILES["tiny"]),
    "description": "The toy world's trained models on CPU (a newcomer's `make run`); one logical GPU.",
}
SERVE_PROFILES["toy"]["args"]["profile"] = "toy"


def profile_app_args(name: str, **overrides: Any) -> AppArgs:
    """The AppArgs of serve profile ``name``, with top-level ``overrides`` (None values ignored)."""
    try:
        data = copy.deepcopy(SERVE_PROFILES[name]["args"])
    except KeyError:
        raise ValueError(f"unknown serve profile {name!r}; choose one of {sorted(SERVE_PROFILES)}") from None
    data.update({key: value for key, value in overrides.items() if value is not None})
    return AppArgs.model_validate(data)


def app_args_data(args: AppArgs) -> dict[str, Any]:
    """What goes under ``args:`` in the file: only the fields that were set (profile always)."""
    data = args.model_dump(mode="json", exclude_unset=True)
    data["profile"] = args.profile
    return data


def render_serve_config(
    args: AppArgs,
    *,
    instance: dict[str, Any] | None = None,
    log_encoding: str = "JSON",
    log_level: str = "INFO",
) -> dict[str, Any]:
    """A ``ServeDeploySchema``-shaped dict running ``serve.app:build_app`` with ``args``.

    ``instance`` holds the Serve-instance keys (``proxy_location``, ``http_options``); the
    application's workers run ``store.logging_setup.install`` (structured logs with ids) at start.
    """
    config: dict[str, Any] = copy.deepcopy(instance or {})
    config["logging_config"] = {"encoding": log_encoding, "log_level": log_level, "enable_access_log": True}
    config["applications"] = [
        {
            "name": args.app_name,
            "route_prefix": args.route_prefix,
            "import_path": IMPORT_PATH,
            "runtime_env": {
                "worker_process_setup_hook": SETUP_HOOK,
                "env_vars": {"SCENECHAIN_LOG_FORMAT": "json" if log_encoding == "JSON" else "text"},
            },
            "args": app_args_data(args),
        }
    ]
    return config


def render_profile(name: str, **overrides: Any) -> dict[str, Any]:
    """The config of serve profile ``name`` (what ``configs/<name>.yaml`` holds)."""
    args = profile_app_args(name, **overrides)  # ValueError for an unknown name
    profile = SERVE_PROFILES[name]
    return render_serve_config(args, instance=profile["instance"], log_encoding=profile["log_encoding"])


def to_yaml(config: dict[str, Any], *, header: str = "") -> str:
    """YAML text in the file's key order, with ``header`` as leading comment lines."""
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=110)
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*lines, body]) if lines else body


def file_header(name: str) -> str:
    """The comment block at the top of ``configs/<name>.yaml``."""
    return "\n".join(
        [
            f"Ray Serve config, profile '{name}': {SERVE_PROFILES[name]['description']}",
            f"GENERATED by `python -m serve.serve_config --profile {name} > configs/{name}.yaml`;",
            "edit SERVE_PROFILES in serve/serve_config.py, not this file (a test compares them).",
            f"Deploy: `serve deploy configs/{name}.yaml` (docs/deploy.md).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print a profile's config YAML to stdout."""
    parser = argparse.ArgumentParser(prog="python -m serve.serve_config", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=sorted(SERVE_PROFILES), help="Serve profile.")
    parser.add_argument("--output-dir", default=None, help="Override output_dir (e.g. s3://bucket/prefix).")
    parser.add_argument("--app-name", default=None, help="Override the Serve application name.")
    options = parser.parse_args(argv)
    config = render_profile(options.profile, output_dir=options.output_dir, app_name=options.app_name)
    sys.stdout.write(to_yaml(config, header=file_header(options.profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
