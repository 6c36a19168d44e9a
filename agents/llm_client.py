"""One async chat protocol, with adapters for every place an LLM can live.

- ``TransformersChatClient``: a local HF dir through transformers, generation in a thread (CPU dev
  and CI; the ``tiny`` / ``tiny-smollm`` profiles).
- ``OpenAIChatClient``: any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM's server,
  ``ray.serve.llm``'s ingress, hosted APIs).
- ``VLLMEngineChatClient``: an injected vLLM ``AsyncLLM`` in this process, with structured decoding.
- ``HandleChatClient``: a Ray Serve ``DeploymentHandle`` to ``ray.serve.llm``'s ``LLMServer`` (the
  GPU production path) or to our own ``deployments.llm.LLMDeployment`` (the CPU profiles).
- ``FaultyChatClient``: config-driven fault injection (``options.fail``) for failure drills.

Every client raises ``LLMUnavailableError`` (``LLMTimeoutError`` for timeouts) for connection,
timeout and engine failures, and nothing else; the agents turn those into degraded results.
``json_schema`` asks for structured output: enforced by engines that can (vLLM, OpenAI
``response_format``), best effort (instruction + extraction) by transformers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agents.prompts import JSON_INSTRUCTION
from agents.schemas import ChatMessage
from weights.profiles import ModelSpec

logger = logging.getLogger(__name__)

__all__ = [
    "ChatCall",
    "ChatClient",
    "ChatMessage",
    "FaultyChatClient",
    "HandleChatClient",
    "LLMOptions",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "OpenAIChatClient",
    "TransformersChatClient",
    "VLLMEngineChatClient",
    "build_chat_client",
    "extract_json",
]


class LLMUnavailableError(RuntimeError):
    """The LLM could not answer: connection refused, engine dead, bad HTTP status, timeout."""


class LLMTimeoutError(LLMUnavailableError):
    """The LLM did not answer within ``timeout_s``."""


@runtime_checkable
class ChatClient(Protocol):
    """An async chat model. Implementations raise only ``LLMUnavailableError`` for model failures."""

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str: ...


FailMode = Literal["timeout", "unavailable", "invalid_json"]


class LLMOptions(BaseModel):
    """``options`` of a profile's ``llm`` role (``weights.profiles``), validated."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["transformers", "vllm", "openai", "ray-serve-llm"] = Field(
        default="transformers", description="Which adapter serves the model."
    )
    fail: FailMode | None = Field(default=None, description="Inject this LLM fault (drills and tests).")
    base_url: str | None = Field(default=None, description="OpenAI backend: URL up to and including /v1.")
    api_key_env: str | None = Field(default=None, description="OpenAI backend: env var holding the API key.")
    model: str | None = Field(default=None, description="Model name sent to the server; default: source.")
    dtype: str = Field(default="float32", description="transformers / vLLM weights dtype on CPU.")
    max_model_len: int = Field(default=4096, description="vLLM: context length.", ge=256)
    load_format: str = Field(default="auto", description="vLLM: 'dummy' for random weights (benchmarks).")
    random_init: bool = Field(
        default=False,
        description="The source is a config-only dir (gpu-bench): transformers builds the model on the "
        "device with random weights (weights.random_init); vLLM uses load_format 'dummy'.",
    )
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vLLM: extra AsyncEngineArgs.")
    timeout_s: float = Field(default=120.0, description="Default per-call timeout.", gt=0)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def extract_json(text: str) -> str | None:
    """The first balanced top-level JSON object in ``text`` that parses, or None.

    Small models wrap JSON in prose or code fences; this finds it without trusting either.
    """
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for position in range(start, len(text)):
            char = text[position]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    candidate = text[start : position + 1]
                    try:
                        json.loads(candidate)
                    except json.JSONDecodeError:
                        break
                    return candidate
        start = text.find("{", start + 1)
    return None


def _with_json_instruction(messages: list[ChatMessage], json_schema: dict[str, Any]) -> list[ChatMessage]:
    """Append the schema instruction to the system message (or add one) for clients without
    structured decoding."""
    instruction = JSON_INSTRUCTION.format(schema=json.dumps(json_schema))
    if messages and messages[0].role == "system":
        first = ChatMessage(role="system", content=f"{messages[0].content}\n{instruction}")
        return [first, *messages[1:]]
    return [ChatMessage(role="system", content=instruction), *messages]


def _response_format(json_schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI ``response_format`` for a JSON schema."""
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema, "strict": True}}


def _content_of(response: Any) -> str:
    """The assistant text of an OpenAI-style chat completion (dict or pydantic object)."""
    if hasattr(response, "model_dump"):
        response = response.model_dump()
    if not isinstance(response, dict):
        raise LLMUnavailableError(f"unexpected chat response type {type(response).__name__}")
    if response.get("error") or response.get("object") == "error":
        raise LLMUnavailableError(f"LLM server error: {response.get('error') or response.get('message')}")
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMUnavailableError(f"malformed chat response: {exc!r}") from exc
    return content or ""


async def _bounded(coro: Any, timeout_s: float | None, what: str) -> Any:
    """Await ``coro`` within ``timeout_s``; a timeout becomes ``LLMTimeoutError``."""
    try:
        return await asyncio.wait_for(coro, timeout=timeout_s)
    except TimeoutError as exc:
        raise LLMTimeoutError(f"{what} did not answer within {timeout_s} s") from exc


# --------------------------------------------------------------------------------------------
# (c) transformers: CPU dev and CI
# --------------------------------------------------------------------------------------------


class ChatCall(BaseModel):
    """One chat request of a batch (``TransformersChatClient.chat_many``)."""

    messages: list[ChatMessage] = Field(description="The conversation so far.")
    temperature: float = Field(default=0.7, ge=0, description="Sampling temperature; 0 is greedy.")
    max_tokens: int = Field(default=512, ge=1, description="Most new tokens.")
    json_schema: dict[str, Any] | None = Field(default=None, description="Ask for JSON of this schema.")
    timeout_s: float | None = Field(default=None, gt=0, description="Generation time limit.")
    seed: int | None = Field(default=None, description="Sampling seed; None: the client's next seed.")


class _SeededRowSampler:
    """A transformers logits processor that samples every row with its own ``torch.Generator``.

    Temperature, then top-k 50, then top-p 0.95 (transformers' defaults), then one multinomial
    draw from the row's generator; the choice comes back as the only finite logit, so
    ``generate(do_sample=False)`` keeps it. A row's tokens therefore depend on its own seed and
    messages, not on which other requests share its batch.
    """

    def __init__(self, seeds: list[int], temperatures: list[float], device: str) -> None:
        import torch  # noqa: PLC0415

        self.temperatures = temperatures
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch  # noqa: PLC0415

        scores = scores.float()
        chosen = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        for row, (temperature, generator) in enumerate(zip(self.temperatures, self.generators, strict=True)):
            if temperature <= 0:
                chosen[row] = scores[row].argmax()
                continue
            top = torch.topk(scores[row] / temperature, k=min(50, scores.shape[-1]))
            probs = torch.softmax(top.values, dim=-1)
            keep = (probs.cumsum(-1) - probs) < 0.95  # the smallest set with 95% of the mass
            pick = torch.multinomial(probs * keep, 1, generator=generator)
            chosen[row] = top.indices[pick[0]]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), chosen] = 0.0
        return out


class TransformersChatClient:
    """A local HF causal LM dir through transformers; generation runs in a worker thread.

    Sampling is seeded per request: call ``k`` of a client built with ``seed`` uses ``seed + k``
    (or a ``ChatCall``'s own seed), and every row of a batch samples from its own generator, so a
    request's output does not depend on the batch it ran in. ``chat_many`` runs several requests
    in one left-padded ``generate`` call (the LLM deployment batches concurrent callers through
    it). One generation at a time (a lock): the model is not shared across threads.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        seed: int = 0,
        dtype: str = "float32",
        random_init: bool = False,
    ):
        self.model_dir = str(model_dir)
        self.device = device
        self.seed = seed
        self.dtype = dtype
        self.random_init = random_init
        # tokens and seconds of the last generate call (benchmarks read it)
        self.last_generation: dict[str, float] | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._calls = 0

    def with_seed(self, seed: int) -> TransformersChatClient:
        """A client sharing this one's loaded model (and lock) whose call ``k`` samples with
        ``seed + k``: one model, many seeded views (a generation's seed fixes its LLM output)."""
        self.load()
        client = TransformersChatClient(
            self.model_dir, device=self.device, seed=seed, dtype=self.dtype, random_init=self.random_init
        )
        client._model, client._tokenizer, client._lock = self._model, self._tokenizer, self._lock
        return client

    def load(self) -> None:
        """Load tokenizer and model (idempotent; done on the first chat otherwise)."""
        if self._model is not None:
            return
        import torch  # noqa: PLC0415
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

        started = time.perf_counter()
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        model: Any
        if self.random_init:  # a config-only dir: built on the device, random weights
            from weights.random_init import build_random  # noqa: PLC0415

            model = build_random(self.model_dir, self.device, self.dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=getattr(torch, self.dtype))
        self._model = model.to(self.device).eval()
        logger.info(
            "loaded LLM %s on %s in %.1f s", self.model_dir, self.device, time.perf_counter() - started
        )

    def _generate_many(
        self, rows: list[tuple[list[dict[str, str]], float, int, int]], max_time: float | None
    ) -> tuple[list[str], float]:
        """Blocking batched generation of (messages, temperature, max_tokens, seed) rows.

        Returns each row's text (cut to its own ``max_tokens``) and the seconds generation took.
        """
        import torch  # noqa: PLC0415

        with self._lock:
            self.load()
            tokenizer = self._tokenizer
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            # 1. tokenize each conversation and left-pad to one width (new tokens line up on the right)
            encoded = [
                list(
                    tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)[
                        "input_ids"
                    ]
                )
                for messages, _t, _m, _s in rows
            ]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded])
            attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
            # 2. generate: greedy over logits where a per-row seeded sampler left one finite choice
            sampler = _SeededRowSampler([row[3] for row in rows], [row[1] for row in rows], self.device)
            kwargs: dict[str, Any] = {
                "max_new_tokens": max(row[2] for row in rows),
                "pad_token_id": pad_id,
                "do_sample": False,
                "logits_processor": [sampler],
            }
            if max_time is not None:
                kwargs["max_time"] = max_time  # stops the thread too, not just the awaiting task
            started = time.perf_counter()
            with torch.inference_mode():
                output = self._model.generate(
                    input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
                )
            elapsed = time.perf_counter() - started
            self.last_generation = {
                "rows": len(rows),
                "prompt_tokens": width,
                "new_tokens": int(output.shape[1] - width),
                "seconds": elapsed,
            }
            # 3. decode each row's own budget of new tokens
            texts = [
                tokenizer.decode(output[i, width : width + row[2]], skip_special_tokens=True)
                for i, row in enumerate(rows)
            ]
            return texts, elapsed

    def _next_seed(self) -> int:
        self._calls += 1
        return self.seed + self._calls

    async def chat_many(self, calls: list[ChatCall]) -> list[str | LLMUnavailableError]:
        """Answer several requests in one batched generation; each entry is a text or its error."""
        rows = []
        for call in calls:
            messages = call.messages
            if call.json_schema is not None:
                messages = _with_json_instruction(messages, call.json_schema)
            seed = call.seed if call.seed is not None else self._next_seed()
            rows.append(([m.model_dump() for m in messages], call.temperature, call.max_tokens, seed))
        limits = [call.timeout_s for call in calls]
        max_time = None if any(limit is None for limit in limits) else max(limits)  # type: ignore[type-var]
        try:
            # Grace over max_time covers model loading and decoding of the last step.
            texts, elapsed = await _bounded(
                asyncio.to_thread(self._generate_many, rows, max_time),
                None if max_time is None else max_time * 2 + 60,
                f"transformers LLM {self.model_dir}",
            )
        except LLMUnavailableError as exc:
            return [exc for _ in calls]
        except (OSError, RuntimeError, ValueError) as exc:  # load failures, OOM, bad chat template
            error = LLMUnavailableError(f"transformers LLM failed: {exc}")
            return [error for _ in calls]
        answers: list[str | LLMUnavailableError] = []
        for call, text in zip(calls, texts, strict=True):
            if call.timeout_s is not None and elapsed >= call.timeout_s:
                answers.append(
                    LLMTimeoutError(f"transformers LLM {self.model_dir} hit the {call.timeout_s} s limit")
                )
            elif call.json_schema is not None:
                answers.append(extract_json(text) or text)
            else:
                answers.append(text)
        return answers

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        call = ChatCall(
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            json_schema=json_schema,
            timeout_s=timeout_s,
        )
        (answer,) = await self.chat_many([call])
        if isinstance(answer, LLMUnavailableError):
            raise answer
        return answer


# --------------------------------------------------------------------------------------------
# (b) OpenAI-compatible endpoint
# --------------------------------------------------------------------------------------------


class OpenAIChatClient:
    """``POST {base_url}/chat/completions`` with httpx; ``json_schema`` → ``response_format``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        seed: int | None = None,
        default_timeout_s: float = 120.0,
        http_client: Any = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.seed = seed
        self.default_timeout_s = default_timeout_s
        self._http_client = http_client  # injectable (tests use httpx.MockTransport)

    def _client(self) -> Any:
        import httpx  # noqa: PLC0415

        if self._http_client is None:
            self._http_client = httpx.AsyncClient()
        return self._http_client

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        import httpx  # noqa: PLC0415

        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if json_schema is not None:
            body["response_format"] = _response_format(json_schema)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = timeout_s or self.default_timeout_s
        try:
            response = await self._client().post(
                f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise LLMTimeoutError(f"{self.base_url} did not answer within {timeout} s") from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailableError(f"{self.base_url} unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise LLMUnavailableError(
                f"{self.base_url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            return _content_of(response.json())
        except ValueError as exc:
            raise LLMUnavailableError(f"{self.base_url} answered non-JSON: {response.text[:300]}") from exc

    async def aclose(self) -> None:
        """Close the owned HTTP client."""
        if self._http_client is not None:
            await self._http_client.aclose()


# --------------------------------------------------------------------------------------------
# (a) vLLM: an engine in this process, or a Serve deployment through its handle
# --------------------------------------------------------------------------------------------


def _vllm_sampling_params(
    temperature: float, max_tokens: int, seed: int, json_schema: dict[str, Any] | None
) -> Any:
    """vLLM ``SamplingParams``; JSON-schema decoding across vLLM's API generations."""
    from vllm import SamplingParams  # noqa: PLC0415

    kwargs: dict[str, Any] = {}
    if json_schema is not None:
        try:
            from vllm.sampling_params import StructuredOutputsParams  # noqa: PLC0415

            kwargs["structured_outputs"] = StructuredOutputsParams(json=json_schema)
        except ImportError:  # vLLM < 0.11
            from vllm.sampling_params import GuidedDecodingParams  # noqa: PLC0415

            kwargs["guided_decoding"] = GuidedDecodingParams(json=json_schema)
    return SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed, **kwargs)


class VLLMEngineChatClient:
    """Chat over an injected vLLM ``AsyncLLM`` (or ``AsyncLLMEngine``): chat template applied with
    the engine's tokenizer, ``json_schema`` enforced by structured decoding."""

    def __init__(
        self, engine: Any, *, tokenizer: Any = None, seed: int = 0, sampling_params_factory: Any = None
    ):
        self.engine = engine
        self._tokenizer = tokenizer
        self.seed = seed
        # Injectable so unit tests can drive a fake engine without vLLM installed.
        self._sampling_params = sampling_params_factory or _vllm_sampling_params
        self._calls = 0

    def with_seed(self, seed: int) -> VLLMEngineChatClient:
        """A client on the same engine whose call ``k`` samples with ``seed + k``."""
        return VLLMEngineChatClient(
            self.engine, tokenizer=self._tokenizer, seed=seed, sampling_params_factory=self._sampling_params
        )

    async def _get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            tokenizer = self.engine.get_tokenizer()
            self._tokenizer = await tokenizer if asyncio.iscoroutine(tokenizer) else tokenizer
        return self._tokenizer

    async def _generate(self, prompt: Any, params: Any, request_id: str) -> str:
        final = None
        async for output in self.engine.generate(prompt, params, request_id):
            final = output
        if final is None or not final.outputs:
            raise LLMUnavailableError("vLLM returned no output")
        return final.outputs[0].text

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        self._calls += 1
        request_id = f"scenechain-{uuid.uuid4().hex}"
        try:
            params = self._sampling_params(temperature, max_tokens, self.seed + self._calls, json_schema)
            tokenizer = await self._get_tokenizer()
            text = tokenizer.apply_chat_template(
                [m.model_dump() for m in messages], tokenize=False, add_generation_prompt=True
            )
            # Token ids, not text: the template already holds the special tokens (no second BOS).
            prompt = {"prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)}
            return await _bounded(self._generate(prompt, params, request_id), timeout_s, "vLLM engine")
        except LLMTimeoutError:
            await self._abort(request_id)
            raise
        except LLMUnavailableError:
            raise
        except Exception as exc:  # EngineDeadError, EngineGenerateError, ...: all mean "no answer"
            raise LLMUnavailableError(f"vLLM engine failed: {exc!r}") from exc

    async def _abort(self, request_id: str) -> None:
        try:
            result = self.engine.abort(request_id)
            if asyncio.iscoroutine(result):
                await result
        except Exception:  # best effort: the engine may already be gone
            logger.debug("abort of %s failed", request_id, exc_info=True)


class HandleChatClient:
    """Chat through a Ray Serve ``DeploymentHandle``.

    ``protocol="ray-serve-llm"``: the handle is ``ray.serve.llm``'s ``LLMServer`` (built by
    ``build_llm_deployment``); its ``chat`` takes a ``ChatCompletionRequest`` and streams back the
    ``ChatCompletionResponse``. ``protocol="openai-dict"``: the handle's ``chat`` takes an OpenAI
    request dict and returns the response dict (``deployments.llm.LLMDeployment``).
    """

    def __init__(
        self,
        handle: Any,
        *,
        model: str,
        protocol: Literal["ray-serve-llm", "openai-dict"] = "ray-serve-llm",
        seed: int | None = None,
        request_type: Callable[..., Any] | None = None,
    ):
        self.handle = handle
        self.model = model
        self.protocol = protocol
        self.seed = seed
        # ray.serve.llm's ChatCompletionRequest, injected by the deployment: the cores never import Ray.
        self.request_type = request_type

    def _body(
        self,
        messages: list[ChatMessage],
        temperature: float,
        max_tokens: int,
        json_schema: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": False,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if json_schema is not None:
            body["response_format"] = _response_format(json_schema)
        return body

    async def _call_ray_serve_llm(self, body: dict[str, Any]) -> str:
        if self.request_type is None:
            raise LLMUnavailableError("protocol 'ray-serve-llm' needs request_type (ChatCompletionRequest)")
        request = self.request_type(**body)
        content: str | None = None
        async for item in self.handle.options(stream=True).chat.remote(request):
            # Non-streaming requests yield the whole response once (or an ErrorResponse).
            content = _content_of(item[0] if isinstance(item, list) and item else item)
        if content is None:
            raise LLMUnavailableError("ray.serve.llm returned no response")
        return content

    async def _call_openai_dict(self, body: dict[str, Any]) -> str:
        return _content_of(await self.handle.chat.remote(body))

    def with_seed(self, seed: int) -> HandleChatClient:
        """The same handle, sampling with ``seed``."""
        return HandleChatClient(
            self.handle, model=self.model, protocol=self.protocol, seed=seed, request_type=self.request_type
        )

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        body = self._body(messages, temperature, max_tokens, json_schema)
        if self.protocol == "openai-dict" and timeout_s is not None:
            body["timeout_s"] = timeout_s  # our server also stops generating, not just us waiting
        call = self._call_ray_serve_llm if self.protocol == "ray-serve-llm" else self._call_openai_dict
        try:
            return await _bounded(call(body), timeout_s, f"LLM deployment ({self.protocol})")
        except LLMUnavailableError:
            raise
        except Exception as exc:  # RayActorError, BackPressureError, DeploymentUnavailableError, ...
            raise LLMUnavailableError(f"LLM deployment call failed: {exc!r}") from exc


# --------------------------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------------------------


class FaultyChatClient:
    """Injects one LLM fault, configured: ``timeout`` and ``unavailable`` fail every call;
    ``invalid_json`` answers every JSON-schema call with broken JSON and passes other calls to
    ``inner`` (or echoes the last user message when there is none)."""

    INVALID_JSON = '{"completeness": 90, "specificity": '  # truncated: never parses

    def __init__(self, mode: FailMode, inner: ChatClient | None = None):
        self.mode = mode
        self.inner = inner
        self.calls = 0

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        self.calls += 1
        if self.mode == "timeout":
            raise LLMTimeoutError(f"injected fault: timeout after {timeout_s} s")
        if self.mode == "unavailable":
            raise LLMUnavailableError("injected fault: LLM unavailable")
        if json_schema is not None:
            return self.INVALID_JSON
        if self.inner is not None:
            return await self.inner.chat(
                messages, temperature=temperature, max_tokens=max_tokens, timeout_s=timeout_s
            )
        return next((m.content for m in reversed(messages) if m.role == "user"), "")


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------


def build_vllm_engine(model: str, options: LLMOptions, *, seed: int = 0, device: str = "cpu") -> Any:
    """An in-process vLLM ``AsyncLLM`` for ``model`` (a local dir or hub id)."""
    from agents.vllm_engine import build_async_engine  # noqa: PLC0415

    return build_async_engine(
        model,
        dtype=options.dtype,
        max_model_len=options.max_model_len,
        load_format=options.load_format,
        seed=seed,
        device=device,
        engine_kwargs=options.engine_kwargs,
    )


def build_chat_client(
    spec: ModelSpec,
    *,
    model_dir: Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    handle: Any = None,
    handle_request_type: Callable[..., Any] | None = None,
) -> ChatClient:
    """The chat client a profile's ``llm`` spec asks for (``spec.options``: see ``LLMOptions``).

    Forge references are resolved (built if missing) with ``weights.forge.resolve_spec``. With a
    ``handle`` the model is served by a deployment: ``HandleChatClient`` (protocol from the backend:
    ``ray-serve-llm`` → ``LLMServer``, whose request model the caller passes as
    ``handle_request_type``; otherwise our LLM deployment's dict protocol). ``options.fail`` wraps the
    client in ``FaultyChatClient`` (no model is loaded for ``timeout`` / ``unavailable``).
    """
    options = LLMOptions.model_validate(spec.options)
    if options.fail in ("timeout", "unavailable"):
        return FaultyChatClient(options.fail)
    client: ChatClient
    if handle is not None:
        protocol: Literal["ray-serve-llm", "openai-dict"] = (
            "ray-serve-llm" if options.backend == "ray-serve-llm" else "openai-dict"
        )
        client = HandleChatClient(
            handle,
            model=options.model or spec.source,
            protocol=protocol,
            seed=seed,
            request_type=handle_request_type,
        )
    elif options.backend == "openai":
        if not options.base_url:
            raise ValueError("llm backend 'openai' needs options.base_url")
        api_key = os.environ.get(options.api_key_env) if options.api_key_env else None
        client = OpenAIChatClient(
            options.base_url,
            options.model or spec.source,
            api_key=api_key,
            seed=seed,
            default_timeout_s=options.timeout_s,
        )
    elif options.backend == "ray-serve-llm":
        raise ValueError("llm backend 'ray-serve-llm' is served by a deployment: pass its handle")
    else:
        from weights.forge import resolve_spec  # noqa: PLC0415

        source = resolve_spec(spec, model_dir).source
        if options.backend == "vllm":
            if options.random_init:
                options = options.model_copy(update={"load_format": "dummy"})
            engine = build_vllm_engine(source, options, seed=seed, device=device)
            client = VLLMEngineChatClient(engine, seed=seed)
        else:
            client = TransformersChatClient(
                source, device=device, seed=seed, dtype=options.dtype, random_init=options.random_init
            )
    if options.fail == "invalid_json":
        return FaultyChatClient("invalid_json", client)
    return client
