"""What each deployment's replicas receive: one settings model per deployment, nothing more.

``serve/app.py`` builds these from ``AppArgs`` (``serve/config.py``) and binds each deployment with
its own, so a generator replica never holds the JWT secret and a config change restarts only the
deployments whose settings changed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from director.core import DirectorSettings, RetentionSettings
from director.webhooks import WebhookSettings
from store.faults import FaultSettings
from weights.profiles import GenerationDefaults, ModelSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchSettings(_Strict):
    """``@serve.batch`` knobs of a batched deployment."""

    max_batch_size: int = Field(default=4, ge=1, le=256, description="Most requests merged into one batch.")
    batch_wait_timeout_s: float = Field(
        default=0.05, ge=0, le=10, description="How long a partial batch waits for more requests."
    )
    unit: Literal["requests", "images"] = Field(
        default="requests",
        description="What max_batch_size counts: requests (@serve.batch), or images across requests, "
        "batched when the device frees up (deployments.batcher; Generator and Scorers).",
    )


class EnhancerConfig(_Strict):
    """Prompt-enhancer and planner settings (the per-request iteration cap comes from the request)."""

    approve_threshold: float = Field(default=85.0, ge=0, le=100, description="Critic score that approves.")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one LLM call.")
    plan_timeout_s: float = Field(default=300.0, gt=0, description="Timeout of storyboard planning.")
    enhance_timeout_s: float = Field(default=600.0, gt=0, description="Timeout of one scene's enhancement.")


class ModelReplicaSettings(_Strict):
    """One model role, resolved: where its model is and what it runs on."""

    spec: ModelSpec = Field(description="The role's model source and options (overrides applied).")
    model_dir: str = Field(description="Absolute dir of forged/downloaded models.")
    device: str = Field(default="cpu", description="Profile device: 'cpu', 'cuda' or 'auto'.")
    dtype: str = Field(default="float32", description="Profile dtype name.")


class GeneratorReplicaSettings(ModelReplicaSettings):
    """The Generator deployment's settings."""

    generation: GenerationDefaults = Field(description="The profile's diffusion defaults.")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Request batching.")


class ScorerReplicaSettings(ModelReplicaSettings):
    """One Scorer deployment's settings."""

    name: str = Field(description="Catalogue name of the scorer this deployment serves.")
    batch: BatchSettings = Field(
        default_factory=lambda: BatchSettings(max_batch_size=8), description="Request batching."
    )


class LLMReplicaSettings(ModelReplicaSettings):
    """The LLM deployment's settings (transformers/vLLM-engine/OpenAI backends)."""

    batch: BatchSettings = Field(
        default_factory=lambda: BatchSettings(max_batch_size=8, batch_wait_timeout_s=0.02),
        description="Chat batching (transformers backend; vLLM batches in its engine).",
    )


class EnhancerReplicaSettings(_Strict):
    """The Enhancer deployment's settings: the LLM role's spec (to build chat clients) and its knobs."""

    llm: ModelSpec = Field(description="The LLM role's spec (the model stays in the LLM deployment).")
    model_dir: str = Field(description="Absolute dir of forged/downloaded models.")
    enhancer: EnhancerConfig = Field(default_factory=EnhancerConfig, description="Loop and timeouts.")


class DirectorReplicaSettings(_Strict):
    """The Director deployment's settings."""

    database_url: str = Field(description="SQLAlchemy URL of the app's database.")
    output_dir: str = Field(description="Image/trace store: absolute local path or fsspec URL.")
    core: DirectorSettings = Field(default_factory=DirectorSettings, description="The core's knobs.")
    faults: FaultSettings = Field(default_factory=FaultSettings, description="Injected storage/DB faults.")
    recover_interval_s: float | None = Field(
        default=300.0, gt=0, description="Period of the recovery pass (also every lease_timeout_s)."
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="Retention/TTL.")
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings, description="Webhook delivery (SSRF policy, timeout, retries)."
    )
