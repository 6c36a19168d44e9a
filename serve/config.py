"""Application configuration: ``AppArgs``, what ``build_app`` takes (from ``serve run`` args or a YAML).

Everything here is data. Environment variables are read only in ``AppArgs.from_env()``, at call
time, never at import. Deployment defaults that depend on the profile's device (GPU shares, CPU
shares) are resolved in ``serve/app.py``; a value set here always wins over those defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import (
    PREVIOUS_PUBLIC_KEYS_ENV,
    PREVIOUS_SECRETS_ENV,
    PRIVATE_KEY_ENV,
    PUBLIC_KEY_ENV,
    SECRET_ENV,
    SECRETS_FILE_ENV,
    InsecureKeyError,
    JwtSettings,
    check_serving_keys,
)
from api.ingress import IngressSettings
from api.quotas import QuotaSettings
from deployments.settings import (
    BatchSettings,
    DirectorReplicaSettings,
    EnhancerConfig,
    EnhancerReplicaSettings,
    GeneratorReplicaSettings,
    LLMReplicaSettings,
    ScorerReplicaSettings,
)
from director.core import DirectorSettings, RetentionSettings
from director.webhooks import WebhookSettings
from scorers import SCORER_NAMES
from store.faults import FaultSettings, RetryPolicy
from weights.profiles import ROLES, ModelSpec, Profile, Role, get_profile

SCORER_ROLES: tuple[str, ...] = SCORER_NAMES  # the scorer catalogue (scorers.catalogue) names them


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentSettings(_Strict):
    """Ray Serve options for one deployment; unset fields fall back to Serve's or the profile's default."""

    num_replicas: int | Literal["auto"] | None = Field(
        default=None, description="Fixed replica count, or 'auto' (then autoscaling_config applies)."
    )
    ray_actor_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Ray actor options, e.g. {'num_gpus': 0.25, 'num_cpus': 1}; merged over profile defaults.",
    )
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, description="Concurrent requests per replica."
    )
    max_queued_requests: int | None = Field(
        default=None, description="Requests queued at callers before Serve rejects with 503 (-1: unbounded)."
    )
    autoscaling_config: dict[str, Any] | None = Field(
        default=None, description="Ray Serve autoscaling config (min_replicas, max_replicas, ...)."
    )
    health_check_period_s: float | None = Field(
        default=None, gt=0, description="Replica health-check period."
    )
    backpressure_config: dict[str, Any] | None = Field(
        default=None,
        description="Serve's HTTP answer when max_queued_requests is full: {'status_code': 503, 'retry_after_s': 5}.",
    )

    def serve_options(self, default_actor_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``; None fields are left to Serve."""
        options: dict[str, Any] = {
            "ray_actor_options": {**(default_actor_options or {}), **self.ray_actor_options},
        }
        for name in (
            "num_replicas",
            "max_ongoing_requests",
            "max_queued_requests",
            "autoscaling_config",
            "health_check_period_s",
            "backpressure_config",
        ):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        return options


class ModelOverride(_Strict):
    """Replace a role's model source and/or merge options into it (e.g. {'options': {'fail': 'boom'}})."""

    source: str | None = Field(default=None, description="New model source; None keeps the profile's.")
    options: dict[str, Any] = Field(default_factory=dict, description="Merged over the profile's options.")


class AppArgs(_Strict):
    """Everything ``serve.app:build_app`` needs; every field but the JWT key has a default suited to local dev."""

    # Validation errors would otherwise quote their input: the JWT keys, the DB URL's password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    profile: str = Field(default="tiny", description="Model profile name (weights.profiles).")
    model_dir: str | None = Field(
        default=None, description="Forged/downloaded model dir; None: $SCENECHAIN_MODEL_DIR or ./.models."
    )
    output_dir: str = Field(
        default="output", description="Image/trace store: local path or fsspec URL (s3://bucket/prefix)."
    )
    database_url: str | None = Field(
        default=None,
        repr=False,  # may carry a password
        description="SQLAlchemy URL; None: SQLite file scenechain.db inside a local output_dir.",
    )
    app_name: str = Field(default="scenechain", description="Serve application name (for handles).")
    route_prefix: str = Field(default="/", description="HTTP route prefix of the ingress.")
    jwt: JwtSettings = Field(
        default_factory=JwtSettings,
        description="Bearer-token settings; serving needs a key (SCENECHAIN_JWT_SECRET), see check_secrets.",
    )
    model_overrides: dict[Role, ModelOverride] = Field(
        default_factory=dict, description="Per-role model source/options overrides (also fault injection)."
    )
    score_weights: dict[str, float] | None = Field(
        default=None,
        description="Weights of the four scorers in the overall score; None: the defaults (.50/.25/.15/.10). A mapping replaces them: a scorer it leaves out weighs 0.",
    )
    enhancer: EnhancerConfig = Field(default_factory=EnhancerConfig, description="Enhancer/planner settings.")
    max_concurrent_generations: int = Field(
        default=4, ge=1, description="Generations a Director replica runs at once; the rest wait queued."
    )
    max_queued_generations: int | None = Field(
        default=None,
        ge=1,
        description="Unfinished (queued + running) generations above which POST /api/generate answers 503.",
    )
    max_prefer_wait_s: int = Field(
        default=60,
        ge=1,
        le=60,
        description="Longest 'Prefer: wait=N' the POST honours (N above it waits this long, then answers 202).",
    )
    retry_after_s: int = Field(
        default=10,
        ge=1,
        description="Retry-After seconds of the app's 503 answers and of the per-user concurrency 429.",
    )
    quotas: QuotaSettings = Field(
        default_factory=QuotaSettings, description="Per-user concurrency and rate limits (429 answers)."
    )
    recover_interval_s: float | None = Field(
        default=300.0,
        gt=0,
        description="Period of the Director's recovery pass; it also runs every lease_timeout_s.",
    )
    lease_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A running generation whose Director replica is silent this long is resumed by another.",
    )
    generate_timeout_s: float = Field(
        default=900.0, gt=0, description="Timeout of one scene's generation call (all its variations)."
    )
    score_timeout_s: float = Field(default=600.0, gt=0, description="Timeout of one scorer call.")
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="Retention/TTL.")
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings,
        description="Webhooks: SSRF policy (allow_private_addresses), attempt timeout, retry window/backoff.",
    )
    faults: FaultSettings = Field(
        default_factory=FaultSettings, description="Fault injection for tests and drills; all off by default."
    )
    io_retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Retry with backoff of the Director's storage writes and DB calls on transient errors.",
    )
    generator_batch: BatchSettings = Field(default_factory=BatchSettings, description="Generator batching.")
    scorer_batch: BatchSettings = Field(
        default_factory=lambda: BatchSettings(max_batch_size=8), description="Scorer batching."
    )
    llm_batch: BatchSettings = Field(
        default_factory=lambda: BatchSettings(max_batch_size=8, batch_wait_timeout_s=0.02),
        description="LLM batching (transformers backend; vLLM batches in its engine).",
    )
    ingress: DeploymentSettings = Field(default_factory=DeploymentSettings, description="Ingress deployment.")
    director: DeploymentSettings = Field(
        default_factory=DeploymentSettings, description="Director deployment."
    )
    generator: DeploymentSettings = Field(
        default_factory=DeploymentSettings, description="Generator deployment."
    )
    scorer: DeploymentSettings = Field(
        default_factory=DeploymentSettings, description="Applied to each of the four scorer deployments."
    )
    scorer_overrides: dict[str, DeploymentSettings] = Field(
        default_factory=dict, description="Per-scorer deployment settings, merged over 'scorer'."
    )
    enhancer_deployment: DeploymentSettings = Field(
        default_factory=DeploymentSettings, description="Enhancer (planner + two-agent loop) deployment."
    )
    llm: DeploymentSettings = Field(default_factory=DeploymentSettings, description="LLM deployment.")

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        get_profile(value)  # raises UnknownProfileError (a ValueError) listing valid names
        return value

    @field_validator("score_weights")
    @classmethod
    def _known_scorers(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            unknown = sorted(set(value) - set(SCORER_ROLES))
            if unknown:
                raise ValueError(f"unknown scorers in score_weights: {unknown}; known: {list(SCORER_ROLES)}")
        return value

    @field_validator("scorer_overrides")
    @classmethod
    def _known_scorer_overrides(cls, value: dict[str, DeploymentSettings]) -> dict[str, DeploymentSettings]:
        unknown = sorted(set(value) - set(SCORER_ROLES))
        if unknown:
            raise ValueError(f"unknown scorers in scorer_overrides: {unknown}; known: {list(SCORER_ROLES)}")
        return value

    # -- resolved views ------------------------------------------------------------------------

    def get_profile(self) -> Profile:
        """The profile object."""
        return get_profile(self.profile)

    def resolved_model_dir(self) -> Path:
        """Absolute model dir (env read here, at call time)."""
        from weights.forge import default_model_dir  # noqa: PLC0415

        return Path(self.model_dir).resolve() if self.model_dir else default_model_dir()

    def model_spec(self, role: Role) -> ModelSpec:
        """The profile's spec for ``role`` with ``model_overrides`` applied (forge refs unresolved)."""
        spec = self.get_profile().model(role)
        override = self.model_overrides.get(role)
        if override is None:
            return spec
        return ModelSpec(
            source=override.source or spec.source,
            options={**spec.options, **override.options},
        )

    def is_local_output(self) -> bool:
        """True when output_dir is a local path (no URL scheme other than file://)."""
        return "://" not in self.output_dir or self.output_dir.startswith("file://")

    def resolved_output_dir(self) -> str:
        """output_dir made absolute when local (replicas may run in another cwd)."""
        if not self.is_local_output():
            return self.output_dir
        path = self.output_dir.removeprefix("file://")
        return str(Path(path).resolve())

    def resolved_database_url(self) -> str:
        """database_url, or a SQLite file inside a local output_dir."""
        if self.database_url:
            return self.database_url
        if not self.is_local_output():
            raise ValueError("database_url is required when output_dir is not a local path")
        return f"sqlite:///{Path(self.resolved_output_dir()) / 'scenechain.db'}"

    def check_secrets(self) -> None:
        """InsecureKeyError (naming the variable to set) unless the JWT keys may serve: an HS256
        secret configured, >= 32 bytes and never a public value; an RS256 public key that parses."""
        check_serving_keys(self.jwt)

    def scorer_deployment(self, name: str) -> DeploymentSettings:
        """The deployment settings of one scorer: 'scorer' with its per-scorer override merged over."""
        override = self.scorer_overrides.get(name)
        if override is None:
            return self.scorer
        merged = self.scorer.model_dump(exclude_unset=False)
        for key, value in override.model_dump(exclude_unset=True).items():
            if key == "ray_actor_options":
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        return DeploymentSettings.model_validate(merged)

    def resolved(self) -> AppArgs:
        """A copy with model_dir, output_dir and database_url made explicit (what replicas receive)."""
        return self.model_copy(
            update={
                "model_dir": str(self.resolved_model_dir()),
                "output_dir": self.resolved_output_dir(),
                "database_url": self.resolved_database_url(),
            }
        )

    # -- what each deployment receives ---------------------------------------------------------

    def director_settings(self) -> DirectorSettings:
        """The Director core's knobs (one place: deployment and benchmarks)."""
        return DirectorSettings(
            score_weights=self.score_weights,
            max_concurrent_generations=self.max_concurrent_generations,
            plan_timeout_s=self.enhancer.plan_timeout_s,
            enhance_timeout_s=self.enhancer.enhance_timeout_s,
            generate_timeout_s=self.generate_timeout_s,
            score_timeout_s=self.score_timeout_s,
            lease_timeout_s=self.lease_timeout_s,
            io_retry=self.io_retry,
        )

    def director_replica(self) -> DirectorReplicaSettings:
        """The Director deployment's settings (call on a ``resolved()`` copy)."""
        return DirectorReplicaSettings(
            database_url=self.resolved_database_url(),
            output_dir=self.resolved_output_dir(),
            core=self.director_settings(),
            faults=self.faults,
            recover_interval_s=self.recover_interval_s,
            retention=self.retention,
            webhooks=self.webhooks,
        )

    def ingress_settings(self) -> IngressSettings:
        """The Ingress deployment's settings."""
        return IngressSettings(
            app_name=self.app_name,
            profile=self.profile,
            database_url=self.resolved_database_url(),
            output_dir=self.resolved_output_dir(),
            jwt=self.jwt.for_verification(),  # a serving node never needs the private key
            quotas=self.quotas,
            max_queued_generations=self.max_queued_generations,
            retry_after_s=self.retry_after_s,
            webhooks=self.webhooks,
            director_capacity=self.max_concurrent_generations * self.director_replicas(),
            max_wait_s=self.max_prefer_wait_s,
        )

    def director_replicas(self) -> int:
        """Director replicas the app starts with (autoscaled: its minimum), for queue ETAs."""
        fixed = self.director.num_replicas
        if isinstance(fixed, int):
            return fixed
        if fixed == "auto" and self.director.autoscaling_config:
            return max(1, int(self.director.autoscaling_config.get("min_replicas", 1)))
        return 1

    def _model_replica(self, role: Role) -> dict[str, Any]:
        profile = self.get_profile()
        return {
            "spec": self.model_spec(role),
            "model_dir": str(self.resolved_model_dir()),
            "device": profile.device,
            "dtype": profile.dtype,
        }

    def generator_replica(self) -> GeneratorReplicaSettings:
        """The Generator deployment's settings."""
        return GeneratorReplicaSettings(
            **self._model_replica("diffusion"),
            generation=self.get_profile().generation,
            batch=self.generator_batch,
        )

    def scorer_replica(self, name: str) -> ScorerReplicaSettings:
        """One Scorer deployment's settings."""
        return ScorerReplicaSettings(**self._model_replica(name), name=name, batch=self.scorer_batch)  # type: ignore[arg-type]

    def llm_replica(self) -> LLMReplicaSettings:
        """The LLM deployment's settings."""
        return LLMReplicaSettings(**self._model_replica("llm"), batch=self.llm_batch)

    def enhancer_replica(self) -> EnhancerReplicaSettings:
        """The Enhancer deployment's settings."""
        return EnhancerReplicaSettings(
            llm=self.model_spec("llm"), model_dir=str(self.resolved_model_dir()), enhancer=self.enhancer
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> AppArgs:
        """Defaults, then SCENECHAIN_* / DATABASE_URL environment variables, then ``overrides``."""
        data: dict[str, Any] = {}
        env = os.environ
        if env.get("SCENECHAIN_PROFILE"):
            data["profile"] = env["SCENECHAIN_PROFILE"]
        if env.get("SCENECHAIN_MODEL_DIR"):
            data["model_dir"] = env["SCENECHAIN_MODEL_DIR"]
        if env.get("SCENECHAIN_OUTPUT_DIR"):
            data["output_dir"] = env["SCENECHAIN_OUTPUT_DIR"]
        if env.get("DATABASE_URL"):
            data["database_url"] = env["DATABASE_URL"]
        jwt = jwt_from_env()
        if jwt:
            data["jwt"] = jwt
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return cls.model_validate(data)


def _listed(value: str) -> list[str]:
    """The items of a comma-separated variable, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _read_key_file(variable: str, path: str) -> str:
    """The text of a key file named by ``variable`` (InsecureKeyError naming it when unreadable)."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InsecureKeyError(f"{variable}={path}: cannot read the key file ({exc.strerror})") from None


def jwt_from_env() -> dict[str, Any]:
    """The JWT settings the environment sets (read at call time).

    HS256: SCENECHAIN_JWT_SECRET signs and SCENECHAIN_JWT_PREVIOUS_SECRETS (comma-separated) still
    verify; or SCENECHAIN_JWT_SECRETS_FILE names a file with one secret per line, the first signs
    (a file is re-read at each build, so a rotation needs no restart of Ray). RS256:
    SCENECHAIN_JWT_PUBLIC_KEY_FILE, SCENECHAIN_JWT_PREVIOUS_PUBLIC_KEY_FILES (comma-separated
    paths) still verify; SCENECHAIN_JWT_PRIVATE_KEY_FILE only mints.
    """
    env = os.environ
    jwt: dict[str, Any] = {}
    if env.get(SECRETS_FILE_ENV):
        if env.get(SECRET_ENV) or env.get(PREVIOUS_SECRETS_ENV):
            raise InsecureKeyError(
                f"{SECRETS_FILE_ENV} and {SECRET_ENV}/{PREVIOUS_SECRETS_ENV} are both set: set one of them"
            )
        lines = _read_key_file(SECRETS_FILE_ENV, env[SECRETS_FILE_ENV]).splitlines()
        listed = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if listed:
            jwt["secret"], jwt["previous_secrets"] = listed[0], listed[1:]
    if env.get(SECRET_ENV):
        jwt["secret"] = env[SECRET_ENV]
    if env.get(PREVIOUS_SECRETS_ENV):
        jwt["previous_secrets"] = _listed(env[PREVIOUS_SECRETS_ENV])
    if env.get(PUBLIC_KEY_ENV):
        jwt["algorithm"] = "RS256"
        jwt["public_key"] = _read_key_file(PUBLIC_KEY_ENV, env[PUBLIC_KEY_ENV])
    if env.get(PREVIOUS_PUBLIC_KEYS_ENV):
        jwt["previous_public_keys"] = [
            _read_key_file(PREVIOUS_PUBLIC_KEYS_ENV, path) for path in _listed(env[PREVIOUS_PUBLIC_KEYS_ENV])
        ]
    if env.get(PRIVATE_KEY_ENV):
        jwt["private_key"] = _read_key_file(PRIVATE_KEY_ENV, env[PRIVATE_KEY_ENV])
    return jwt


def load_app_args(args: dict[str, Any] | AppArgs | None) -> AppArgs:
    """AppArgs from what ``serve run``/a YAML passes (a dict of strings or nested values), env first."""
    if isinstance(args, AppArgs):
        return args
    return AppArgs.from_env(**(args or {}))


__all__ = [
    "ROLES",
    "SCORER_ROLES",
    "AppArgs",
    "BatchSettings",
    "DeploymentSettings",
    "EnhancerConfig",
    "FaultSettings",
    "InsecureKeyError",
    "JwtSettings",
    "ModelOverride",
    "QuotaSettings",
    "RetentionSettings",
    "RetryPolicy",
    "jwt_from_env",
    "load_app_args",
]
