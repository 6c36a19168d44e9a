"""Application configuration: ``AppArgs``, what ``build_app`` takes (from ``serve run`` args or a YAML).

Everything here is data. Environment variables are read only in ``AppArgs.from_env()``, at call
time, never at import. Deployment defaults that depend on the profile's device (GPU shares, CPU
shares) are resolved in ``serve/app.py``; a value set here always wins over those defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from weights.profiles import ROLES, ModelSpec, Profile, Role, get_profile

SCORER_ROLES: tuple[str, ...] = ("pickscore", "clipscore", "vqa", "aesthetic")
DEFAULT_DEV_SECRET = (
    "scenechain-dev-secret-change-me-in-production"  # dev only; production sets SCENECHAIN_JWT_SECRET
)


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


class BatchSettings(_Strict):
    """``@serve.batch`` knobs of a batched deployment."""

    max_batch_size: int = Field(default=4, ge=1, le=256, description="Most requests merged into one batch.")
    batch_wait_timeout_s: float = Field(
        default=0.05, ge=0, le=10, description="How long a partial batch waits for more requests."
    )


class JwtSettings(_Strict):
    """Bearer-token verification (and dev-token minting)."""

    algorithm: Literal["HS256", "RS256"] = Field(default="HS256", description="JWT signature algorithm.")
    secret: str = Field(default=DEFAULT_DEV_SECRET, description="HS256 shared secret.")
    public_key: str | None = Field(default=None, description="RS256 PEM public key (verification).")
    private_key: str | None = Field(default=None, description="RS256 PEM private key (only to mint tokens).")
    issuer: str = Field(default="scenechain", description="Expected 'iss' claim.")
    audience: str | None = Field(default=None, description="Expected 'aud' claim, if any.")
    default_ttl_s: int = Field(default=24 * 3600, ge=1, description="Lifetime of minted dev tokens.")

    @model_validator(mode="after")
    def _check_keys(self) -> JwtSettings:
        if self.algorithm == "RS256" and not self.public_key:
            raise ValueError("jwt.algorithm RS256 needs jwt.public_key")
        return self


class ModelOverride(_Strict):
    """Replace a role's model source and/or merge options into it (e.g. {'options': {'fail': 'boom'}})."""

    source: str | None = Field(default=None, description="New model source; None keeps the profile's.")
    options: dict[str, Any] = Field(default_factory=dict, description="Merged over the profile's options.")


class EnhancerConfig(_Strict):
    """Prompt-enhancer and planner settings (the per-request iteration cap comes from the request)."""

    approve_threshold: float = Field(default=85.0, ge=0, le=100, description="Critic score that approves.")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one LLM call.")
    plan_timeout_s: float = Field(default=300.0, gt=0, description="Timeout of storyboard planning.")
    enhance_timeout_s: float = Field(default=600.0, gt=0, description="Timeout of one scene's enhancement.")


class RetentionSettings(_Strict):
    """How long finished generations (rows, images, traces) are kept."""

    ttl_days: float | None = Field(
        default=None, gt=0, description="Delete finished generations older than this."
    )
    sweep_interval_s: float = Field(default=3600.0, gt=0, description="How often the Director sweeps.")


class RetryPolicy(_Strict):
    """Retry of transient storage/DB errors: exponential backoff with jitter (docs/reliability.md).

    Retry k (1-based) waits ``min(max_delay_s, base_delay_s * 2**(k-1))``, less a random fraction
    up to ``jitter`` of it (so replicas that failed together do not retry together). Keep the total
    (about ``max_delay_s * attempts`` at worst) well under ``lease_timeout_s``.
    """

    attempts: int = Field(default=6, ge=1, le=100, description="Tries in all, the first one included.")
    base_delay_s: float = Field(
        default=0.5, ge=0, description="Wait before the first retry; doubles each retry."
    )
    max_delay_s: float = Field(default=8.0, ge=0, description="Longest wait between two tries.")
    jitter: float = Field(
        default=0.5, ge=0, le=1, description="Fraction of each wait drawn at random (0: fixed waits)."
    )

    def delay_s(self, retry: int, draw: float) -> float:
        """The wait before retry ``retry`` (1-based); ``draw`` is a uniform random number in [0, 1)."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        return delay * (1.0 - self.jitter * draw)


class FaultSettings(_Strict):
    """Fault injection into the Director's storage and DB calls (serve/faults.py); all off by default.

    The faults hit the real retry code path: the wrappers raise the errors a real outage raises.
    Model faults are injected through ``model_overrides`` options instead.
    """

    storage_write_failures: int = Field(
        default=0,
        ge=0,
        description="This many of the Director's storage writes in a row raise OSError('injected storage write failure').",
    )
    storage_write_failures_after: int = Field(
        default=0, ge=0, description="Storage writes that succeed before the injected failures start."
    )
    db_unavailable_s: float = Field(
        default=0.0,
        ge=0,
        description="Length of an injected DB outage: every Director DB call raises OperationalError meanwhile.",
    )
    db_unavailable_after_updates: int = Field(
        default=0,
        ge=0,
        description="Generation updates that succeed before the outage starts (it starts at the next update).",
    )

    @property
    def enabled(self) -> bool:
        """True when any fault is injected."""
        return self.storage_write_failures > 0 or self.db_unavailable_s > 0


class QuotaSettings(_Strict):
    """Per-user limits on POST /api/generate (HTTP 429 + Retry-After); None switches a limit off."""

    max_active_per_user: int | None = Field(
        default=None, ge=1, description="Queued + running generations one user may have at once."
    )
    rate_limit_per_user: int | None = Field(
        default=None, ge=1, description="Generations one user may submit per rate_window_s (sliding)."
    )
    rate_window_s: float = Field(
        default=60.0, gt=0, description="Length in seconds of the sliding window of rate_limit_per_user."
    )


class AppArgs(_Strict):
    """Everything ``serve.app:build_app`` needs; every field has a default suited to local dev."""

    profile: str = Field(default="tiny", description="Model profile name (weights.profiles).")
    model_dir: str | None = Field(
        default=None, description="Forged/downloaded model dir; None: $SCENECHAIN_MODEL_DIR or ./.models."
    )
    output_dir: str = Field(
        default="output", description="Image/trace store: local path or fsspec URL (s3://bucket/prefix)."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; None: SQLite file scenechain.db inside a local output_dir."
    )
    app_name: str = Field(default="scenechain", description="Serve application name (for handles).")
    route_prefix: str = Field(default="/", description="HTTP route prefix of the ingress.")
    jwt: JwtSettings = Field(default_factory=JwtSettings, description="Bearer-token settings.")
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
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="Retention/TTL.")
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

    def scorer_settings(self, name: str) -> DeploymentSettings:
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
        jwt: dict[str, Any] = {}
        if env.get("SCENECHAIN_JWT_SECRET"):
            jwt["secret"] = env["SCENECHAIN_JWT_SECRET"]
        if env.get("SCENECHAIN_JWT_PUBLIC_KEY_FILE"):
            jwt["algorithm"] = "RS256"
            jwt["public_key"] = Path(env["SCENECHAIN_JWT_PUBLIC_KEY_FILE"]).read_text()
        if env.get("SCENECHAIN_JWT_PRIVATE_KEY_FILE"):
            jwt["private_key"] = Path(env["SCENECHAIN_JWT_PRIVATE_KEY_FILE"]).read_text()
        if jwt:
            data["jwt"] = jwt
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return cls.model_validate(data)


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
    "JwtSettings",
    "ModelOverride",
    "QuotaSettings",
    "RetentionSettings",
    "RetryPolicy",
    "load_app_args",
]
