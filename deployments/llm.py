"""LLM deployment (CPU/dev backends): an OpenAI-style ``chat(body) -> dict`` over a local chat client.

The GPU profile serves the LLM with ``ray.serve.llm`` instead (bound in ``serve/app.py``); both are
reached through ``agents.llm_client.HandleChatClient``. Sampling is seeded per call from the
request body's ``seed`` so a generation's LLM output depends only on its own seed and messages.

With the transformers backend, concurrent calls (scenes of different generations enhancing at
once) are collected by ``@serve.batch`` into one left-padded ``generate`` call; every row samples
from its own seeded generator, so batching changes throughput, not answers. (vLLM batches by
itself: continuous batching in the engine.) A ``costmodel:`` LLM (profile ``cluster-twin``) is
``agents.costmodel.CostModelChatClient``: a vLLM engine's timeline, continuous batching included,
so its calls go straight to it, not through ``@serve.batch``.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from ray import serve

from agents.costmodel import CostModelChatClient
from agents.llm_client import (
    ChatCall,
    ChatMessage,
    LLMUnavailableError,
    TransformersChatClient,
    build_chat_client,
)
from deployments.costmodel import StageClock
from deployments.settings import LLMReplicaSettings
from weights.costmodel import costmodel_name
from weights.devices import resolve_device

logger = logging.getLogger(__name__)


@serve.deployment(name="LLM", max_ongoing_requests=16, health_check_period_s=30)
class LLMDeployment:
    """Serves the profile's ``llm`` role from this replica."""

    def __init__(self, settings: dict[str, Any]) -> None:
        config = LLMReplicaSettings.model_validate(settings)
        self.spec = config.spec
        self.model = str(self.spec.options.get("model") or self.spec.source)
        self.client: Any
        if costmodel_name(self.spec.source) is not None:
            self.client = CostModelChatClient(self.spec)
        else:
            self.client = build_chat_client(
                self.spec, model_dir=Path(config.model_dir), device=resolve_device(config.device)
            )
        self._clock = StageClock()
        if isinstance(self.client, TransformersChatClient):
            # Load now, once: concurrent first calls would race in from_pretrained (meta tensors).
            self.client.load()
        self._chat_batch.set_max_batch_size(config.batch.max_batch_size)
        self._chat_batch.set_batch_wait_timeout_s(config.batch.batch_wait_timeout_s)

    def _seeded_client(self, seed: int | None) -> Any:
        """A client that samples with ``seed`` (sharing the loaded transformers model)."""
        if seed is None or not hasattr(self.client, "with_seed"):
            return self.client
        # One loaded model, many seeded views; the shared lock keeps generation single-threaded.
        return self.client.with_seed(seed)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI chat-completion response dict (or an error dict) for an OpenAI request dict."""
        started = time.perf_counter()
        response_format = body.get("response_format") or {}
        call = ChatCall(
            messages=[ChatMessage.model_validate(m) for m in body.get("messages", [])],
            temperature=float(body.get("temperature", 0.7)),
            max_tokens=int(body.get("max_tokens", 512)),
            json_schema=(response_format.get("json_schema") or {}).get("schema"),
            timeout_s=body.get("timeout_s"),
            seed=None if body.get("seed") is None else int(body["seed"]),
        )
        entered = time.perf_counter()
        if isinstance(self.client, TransformersChatClient):
            answer = await self._chat_batch(call)
        else:
            answer = await self._chat_one(call)
        self._clock.record(call, entered, compute_s=time.perf_counter() - entered)
        if isinstance(answer, LLMUnavailableError):
            return {"object": "error", "error": str(answer)}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
            ],
            "usage": {"seconds": round(time.perf_counter() - started, 3)},
        }

    def stage_timings(self) -> list[dict[str, float]]:
        """Per call since the last read: time in this replica and in the (simulated) engine."""
        return self._clock.take()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _chat_batch(self, calls: list[ChatCall]) -> list[str | LLMUnavailableError]:
        return await self.client.chat_many(calls)

    async def _chat_one(self, call: ChatCall) -> str | LLMUnavailableError:
        client = self._seeded_client(call.seed)
        try:
            return await client.chat(
                call.messages,
                temperature=call.temperature,
                max_tokens=call.max_tokens,
                json_schema=call.json_schema,
                timeout_s=call.timeout_s,
            )
        except LLMUnavailableError as exc:
            return exc
