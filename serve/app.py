"""``build_app``: the one place that binds deployments into the scenechain application.

    serve run serve.app:build_app profile=tiny          # CLI args
    serve run configs/tiny.yaml                          # Serve config (import_path + args)
    serve.run(build_app({"profile": "tiny"}), name="scenechain", route_prefix="/")

Graph: Ingress → Director → {Enhancer → LLM, Generator, Scorer x4 (pickscore, clipscore, vqa,
aesthetic)}. Deployment resources default per device kind (below) and are overridden by AppArgs.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.serve import Application

from serve.config import SCORER_ROLES, AppArgs, DeploymentSettings, load_app_args

logger = logging.getLogger(__name__)

# Replica resources by device kind, as data. CPU: small logical shares so the whole graph places on a
# 2-core laptop; GPU: a whole GPU for the generator and the LLM, a quarter for each scorer.
DEFAULT_ACTOR_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "ingress": {"num_cpus": 0.1},
        "director": {"num_cpus": 0.1},
        "enhancer": {"num_cpus": 0.1},
        "llm": {"num_cpus": 0.25},
        "generator": {"num_cpus": 0.25},
        "scorer": {"num_cpus": 0.25},
    },
    "gpu": {
        "ingress": {"num_cpus": 1},
        "director": {"num_cpus": 1},
        "enhancer": {"num_cpus": 0.5},
        "llm": {"num_cpus": 1, "num_gpus": 1.0},
        "generator": {"num_cpus": 2, "num_gpus": 1.0},
        "scorer": {"num_cpus": 1, "num_gpus": 0.25},
    },
}


# Fields applied through .options(), not needed inside replicas.
_DEPLOYMENT_FIELDS = {
    "ingress",
    "director",
    "generator",
    "scorer",
    "scorer_overrides",
    "enhancer_deployment",
    "llm",
    "generator_batch",
    "scorer_batch",
    "llm_batch",
}


def _payload(app_args: AppArgs, roles: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The AppArgs a replica receives: only its own roles' model overrides (and ``keep`` fields).

    A config change then restarts only the deployments it concerns (e.g. a scorer fault injection
    restarts that scorer, not the generator).
    """
    data = app_args.model_dump(mode="json", exclude=_DEPLOYMENT_FIELDS - set(keep))
    data["model_overrides"] = {role: v for role, v in data["model_overrides"].items() if role in roles}
    return data


def _options(settings: DeploymentSettings, defaults: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**settings.serve_options(defaults), **extra}


def _build_llm(app_args: AppArgs, defaults: dict[str, Any]) -> Application:
    """The LLM deployment: ray.serve.llm (vLLM) for backend 'ray-serve-llm', ours otherwise."""
    spec = app_args.model_spec("llm")
    if spec.options.get("backend") == "ray-serve-llm":
        from ray.serve.llm import LLMConfig, build_llm_deployment  # noqa: PLC0415

        serve_options = app_args.llm.serve_options(defaults)
        # LLMConfig places replicas itself; the GPU type pinning travels as its own field.
        accelerator_type = serve_options["ray_actor_options"].get("accelerator_type")
        llm_config = LLMConfig(
            model_loading_config={
                "model_id": spec.options.get("model") or spec.source,
                "model_source": spec.source,
            },
            engine_kwargs=dict(spec.options.get("engine_kwargs", {})),
            deployment_config={k: v for k, v in serve_options.items() if k != "ray_actor_options"},
            **({"accelerator_type": accelerator_type} if accelerator_type else {}),
        )
        return build_llm_deployment(llm_config, name_prefix="scenechain-")
    from deployments.llm import LLMDeployment  # noqa: PLC0415

    return LLMDeployment.options(**_options(app_args.llm, defaults)).bind(
        _payload(app_args, ("llm",), keep=("llm_batch",))
    )


def build_app(args: dict[str, Any] | AppArgs | None = None) -> Application:
    """The scenechain application for ``args`` (a dict from Serve, or AppArgs); env fills the gaps."""
    from deployments.director import DirectorDeployment  # noqa: PLC0415
    from deployments.enhancer import EnhancerDeployment  # noqa: PLC0415
    from deployments.generator import GeneratorDeployment  # noqa: PLC0415
    from deployments.scorer import ScorerDeployment  # noqa: PLC0415
    from serve.ingress import Ingress  # noqa: PLC0415

    # 1. resolve config: absolute dirs and DB URL, so every replica sees the same ones
    app_args = load_app_args(args).resolved()
    profile = app_args.get_profile()
    defaults = DEFAULT_ACTOR_OPTIONS["cpu" if profile.device == "cpu" else "gpu"]

    # 2. model deployments
    llm = _build_llm(app_args, defaults["llm"])
    enhancer = EnhancerDeployment.options(
        **_options(app_args.enhancer_deployment, defaults["enhancer"])
    ).bind(_payload(app_args, ("llm",)), llm)
    generator = GeneratorDeployment.options(**_options(app_args.generator, defaults["generator"])).bind(
        _payload(app_args, ("diffusion",), keep=("generator_batch",))
    )
    scorers = {
        name: ScorerDeployment.options(
            **_options(app_args.scorer_settings(name), defaults["scorer"], name=f"Scorer_{name}")
        ).bind(_payload(app_args, (name,), keep=("scorer_batch",)), name)
        for name in SCORER_ROLES
    }

    # 3. orchestration and HTTP
    director = DirectorDeployment.options(**_options(app_args.director, defaults["director"])).bind(
        _payload(app_args), enhancer, generator, scorers
    )
    logger.info("built scenechain app: profile=%s output=%s", app_args.profile, app_args.output_dir)
    return Ingress.options(**_options(app_args.ingress, defaults["ingress"])).bind(
        _payload(app_args), director
    )
