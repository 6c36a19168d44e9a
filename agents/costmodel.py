"""The cost-model LLM: the ``ChatClient`` interface, GPU time of a vLLM server from published figures.

Profile ``cluster-twin`` names the LLM ``costmodel:<curve>`` (``weights.costmodel.LLM_CURVES``).
``CostModelChatClient`` answers the three agents with valid replies (the planner's storyboard JSON,
the Cinematographer's rewrite, the Prompt Engineer's critique JSON, which approves from round
``critic_rounds`` on) after the time a vLLM server would take to decode them.

Timing is continuous batching, as vLLM does it: every call in flight advances one token per decode
step, a step with ``b`` sequences costs ``curve.step_seconds(b)``, and a call that arrives joins at
the next step (a fluid model: the scheduler sleeps until the next call finishes or arrives, no
polling). One client is one engine on one GPU it holds alone, so no device lock is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.llm_client import ChatCall
from agents.prompts import CINEMATOGRAPHER_SYSTEM, CRITIC_SYSTEM
from agents.schemas import CRITERIA, ChatMessage
from weights.costmodel import LLM_CURVES, DecodeCurve, costmodel_name
from weights.profiles import ModelSpec

_TAKE = re.compile(r",? take (\d+)\.?$")
_DETAILS = (
    "medium close-up on a 50mm lens at f/2, soft golden-hour key light from the left",
    "shallow depth of field, rule-of-thirds framing, warm rim light and gentle haze",
    "slow dolly-in, polished brand colours, crisp product detail in the foreground",
    "wide establishing shot on a 24mm lens, cool blue fill, leading lines to the subject",
)


class CostModelLLMOptions(BaseModel):
    """``options.costmodel`` of a cost-model LLM spec (stripped before the chat-client options)."""

    model_config = ConfigDict(extra="forbid")

    critic_rounds: int = Field(default=2, ge=1, le=10, description="The critic approves from this round on.")
    reply_tokens: int = Field(default=150, ge=1, description="Output tokens of a rewrite or a critique.")
    plan_tokens_per_scene: int = Field(default=100, ge=1, description="Planner output tokens per scene.")
    time_scale: float = Field(
        default=1.0, gt=0, description="Stretch of every decode step (1: as published)."
    )


def costmodel_options(spec: ModelSpec) -> CostModelLLMOptions:
    """The cost-model options of an LLM spec (defaults when it carries none)."""
    return CostModelLLMOptions.model_validate(spec.options.get("costmodel") or {})


def chat_client_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` without its cost-model options: what ``build_chat_client`` validates."""
    if "costmodel" not in spec.options:
        return spec
    options = {key: value for key, value in spec.options.items() if key != "costmodel"}
    return spec.model_copy(update={"options": options})


class _InFlight:
    """One call in the engine: output tokens still to decode, and who waits for the end."""

    def __init__(self, tokens: float, done: asyncio.Future[None]) -> None:
        self.remaining = tokens
        self.done = done


class _Engine:
    """The continuous-batching timeline of one engine, on one event loop."""

    def __init__(self, curve: DecodeCurve, time_scale: float) -> None:
        self.curve = curve
        self.time_scale = time_scale
        self.active: list[_InFlight] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def decode(self, tokens: int) -> None:
        """Return when ``tokens`` output tokens of this call are decoded among the others in flight."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.active.append(_InFlight(float(tokens), done))
        self.arrived.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        await done

    async def _run(self) -> None:
        while self.active:
            running = list(self.active)  # decode() only appends while we wait
            step = self.curve.step_seconds(len(running)) * self.time_scale
            until_next = min(item.remaining for item in running) * step
            self.arrived.clear()
            started = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=until_next)
            decoded = (time.perf_counter() - started) / step
            still: list[_InFlight] = []
            for item in running:
                item.remaining -= decoded
                if item.remaining <= 1e-6:
                    if not item.done.done():
                        item.done.set_result(None)
                else:
                    still.append(item)
            self.active = still + self.active[len(running) :]


class CostModelChatClient:
    """Agent replies after the decode time of a vLLM server (continuous batching)."""

    def __init__(self, spec: ModelSpec, *, seed: int = 0) -> None:
        name = costmodel_name(spec.source)
        if name is None or name not in LLM_CURVES:
            raise ValueError(
                f"a cost-model LLM needs a 'costmodel:<curve>' source with a curve in {sorted(LLM_CURVES)}, "
                f"got {spec.source!r}"
            )
        self.curve = LLM_CURVES[name]
        self.options = costmodel_options(spec)
        self.seed = seed
        self._engines: dict[int, _Engine] = {}  # per event loop (the naive pipeline runs several)
        self.calls = 0
        self.busy_seconds: list[float] = []  # per call: seconds in the engine

    def _engine(self) -> _Engine:
        loop_id = id(asyncio.get_running_loop())
        engine = self._engines.get(loop_id)
        if engine is None:
            self._engines = {loop_id: _Engine(self.curve, self.options.time_scale)}
            engine = self._engines[loop_id]
        return engine

    def tokens_for(self, messages: list[ChatMessage]) -> int:
        """Output tokens the reply to ``messages`` costs."""
        system = messages[0].content if messages and messages[0].role == "system" else ""
        if system in (CINEMATOGRAPHER_SYSTEM, CRITIC_SYSTEM):
            return self.options.reply_tokens
        scenes = _num_scenes(messages)
        return self.options.plan_tokens_per_scene * scenes if scenes else self.options.reply_tokens

    def reply(self, messages: list[ChatMessage]) -> str:
        """The agent reply to ``messages`` (deterministic)."""
        system = messages[0].content if messages and messages[0].role == "system" else ""
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if system == CINEMATOGRAPHER_SYSTEM:
            return _rewrite(user)
        if system == CRITIC_SYSTEM:
            return _critique(user, self.options.critic_rounds)
        return _plan(user)

    async def chat_many(self, calls: list[ChatCall]) -> list[str]:
        """Answer several calls, each decoded among whatever else is in flight."""
        return list(await asyncio.gather(*(self._answer(call.messages) for call in calls)))

    async def _answer(self, messages: list[ChatMessage]) -> str:
        started = time.perf_counter()
        await self._engine().decode(self.tokens_for(messages))
        self.calls += 1
        self.busy_seconds.append(time.perf_counter() - started)
        return self.reply(messages)

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """One reply (the ``ChatClient`` protocol); sampling options do not change a cost model."""
        return await self._answer(messages)

    def with_seed(self, seed: int) -> CostModelChatClient:
        """This client (its replies do not depend on a seed; one engine timeline is shared)."""
        return self


# ---- the agents' replies ------------------------------------------------------------------------


def _num_scenes(messages: list[ChatMessage]) -> int:
    user = next((m.content for m in messages if m.role == "user"), "")
    match = re.search(r"Number of scenes: (\d+)", user)
    return int(match.group(1)) if match else 0


def _plan(user: str) -> str:
    brief_match = re.search(r"Ad brief: (.*)", user)
    brief = (brief_match.group(1) if brief_match else user).strip()
    scenes = _num_scenes([ChatMessage(role="user", content=user)]) or 1
    beats = ("opening", "middle", "closing", "detail", "wide", "final")
    return json.dumps(
        {
            "scenes": [
                {
                    "prompt": f"Scene {k + 1}, the {beats[k % len(beats)]} beat: {brief}"[:400],
                    "shot_notes": f"shot {k + 1}: medium shot, eye level, slow push-in",
                }
                for k in range(scenes)
            ]
        }
    )


def _rewrite(user: str) -> str:
    prompt = user.split("\n", 1)[0].removeprefix("Image prompt: ").strip()
    match = _TAKE.search(prompt)
    take = int(match.group(1)) + 1 if match else 1
    base = _TAKE.sub("", prompt).rstrip(" ,.")
    return f"{base}, {_DETAILS[(take - 1) % len(_DETAILS)]}, take {take}"


def _critique(user: str, rounds: int) -> str:
    candidate = user.split("Prompt to review:", 1)[-1].strip()
    match = _TAKE.search(candidate)
    take = int(match.group(1)) if match else 0
    # below the approving round each take gains 10 points (well above the loop's min_gain); then 95
    score = 95 if take >= rounds else min(80, 50 + 10 * take)
    digest = hashlib.sha256(candidate.encode()).digest()
    critique: dict[str, Any] = {
        name: max(0, min(100, score + digest[i] % 3 - 1)) for i, name in enumerate(CRITERIA)
    }
    critique["feedback"] = "Add lens, light and composition detail." if score < 95 else "Ready to shoot."
    critique["negative_prompt"] = "blurry, low quality, watermark"
    return json.dumps(critique)
