"""Storyboard planner: ad brief → ``num_scenes`` scenes (prompt + shot notes), schema-checked.

Never raises model failures: when the LLM is unavailable, or its JSON is still invalid after one
repair retry, the plan is the deterministic fallback (the brief split over the scenes), marked
``degraded`` with a warning saying why.
"""

from __future__ import annotations

import json
import logging
import re
import time

from pydantic import ValidationError

from agents.llm_client import ChatClient, LLMUnavailableError, extract_json
from agents.prompts import PROMPT_VERSION, planner_messages, repair_messages
from agents.schemas import ChatMessage, LLMCall, ScenePlan, StoryboardDraft, StoryboardPlan

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_SCENES",
    "PlannerInputError",
    "ScenePlan",
    "StoryboardPlan",
    "fallback_plan",
    "plan_storyboard",
]

MAX_SCENES = 20
PLANNER_TEMPERATURE = 0.4
PLANNER_MAX_TOKENS_PER_SCENE = 200

# Shot notes of the fallback plan, cycled: a classic ad progression from context to product.
FALLBACK_SHOTS: tuple[str, ...] = (
    "Establishing wide shot, eye level, slow push-in.",
    "Medium shot on the subject, shallow depth of field.",
    "Close-up detail shot, 85mm lens, soft key light.",
    "Product hero shot, centered, clean background, rim light.",
    "Wide closing shot, brand moment, golden-hour light.",
)


class PlannerInputError(ValueError):
    """The brief or scene count is not plannable."""


def check_inputs(brief: str, num_scenes: int) -> None:
    """Concise, specific errors for inputs no model can fix."""
    if not brief or not brief.strip():
        raise PlannerInputError("brief must not be empty")
    if not 1 <= num_scenes <= MAX_SCENES:
        raise PlannerInputError(f"num_scenes must be between 1 and {MAX_SCENES}, got {num_scenes}")


def _split_sentences(brief: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", brief.strip()) if s.strip()]


def fallback_plan(
    brief: str, num_scenes: int, warning: str, calls: list[LLMCall] | None = None
) -> StoryboardPlan:
    """The deterministic plan: the brief's sentences spread over the scenes, in order; a brief with fewer
    sentences than scenes repeats the whole brief in each scene. A scene's prompt is what the image
    model reads, so it is the brief's own text; its place in the story is its index and shot notes
    (a "Scene k of N:" prefix would be drawn, or read as content, by a text-to-image model)."""
    sentences = _split_sentences(brief)
    scenes = []
    for index in range(num_scenes):
        if len(sentences) >= num_scenes:
            # contiguous, near-equal chunks of sentences, in order
            start = index * len(sentences) // num_scenes
            stop = (index + 1) * len(sentences) // num_scenes
            text = " ".join(sentences[start:stop])
        else:
            text = brief.strip()
        scenes.append(
            ScenePlan(
                index=index + 1,
                prompt=text,
                shot_notes=FALLBACK_SHOTS[index % len(FALLBACK_SHOTS)],
            )
        )
    return StoryboardPlan(
        brief=brief,
        scenes=scenes,
        degraded=True,
        warnings=[warning],
        prompt_version=PROMPT_VERSION,
        calls=calls or [],
    )


def _brief_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower())}


def _parse_draft(reply: str, brief: str, num_scenes: int) -> StoryboardDraft:
    """Validate the reply: the schema, the exact scene count, and two sanity checks a schema cannot
    express (distinct scene prompts; each shares a word with the brief). Raises ValueError."""
    text = extract_json(reply) or reply
    draft = StoryboardDraft.model_validate_json(text)
    if len(draft.scenes) != num_scenes:
        raise ValueError(f"expected {num_scenes} scenes, got {len(draft.scenes)}")
    prompts = [scene.prompt.strip().lower() for scene in draft.scenes]
    if len(set(prompts)) != len(prompts):
        raise ValueError("scene prompts repeat each other")
    brief_words = _brief_words(brief)
    unrelated = [k + 1 for k, p in enumerate(prompts) if brief_words and not (_brief_words(p) & brief_words)]
    if unrelated:
        raise ValueError(f"scene(s) {unrelated} share no word with the brief")
    return draft


async def _call(
    client: ChatClient,
    messages: list[ChatMessage],
    purpose: str,
    max_tokens: int,
    schema: dict,
    timeout_s: float | None,
    calls: list[LLMCall],
) -> str:
    started = time.perf_counter()
    record = LLMCall(
        agent="planner",
        purpose=purpose,
        messages=messages,
        temperature=PLANNER_TEMPERATURE,
        max_tokens=max_tokens,
        json_schema=True,
        seconds=0.0,
    )
    calls.append(record)
    try:
        reply = await client.chat(
            messages,
            temperature=PLANNER_TEMPERATURE,
            max_tokens=max_tokens,
            json_schema=schema,
            timeout_s=timeout_s,
        )
    except LLMUnavailableError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    # Any other client failure is a model failure too (a third-party client may raise anything).
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        raise LLMUnavailableError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        record.seconds = round(time.perf_counter() - started, 3)
    record.response = reply if isinstance(reply, str) else ""
    return record.response


async def plan_storyboard(
    client: ChatClient,
    brief: str,
    num_scenes: int,
    *,
    timeout_s: float | None = None,
    max_tokens: int | None = None,
) -> StoryboardPlan:
    """Plan ``num_scenes`` scenes for ``brief``; never raises model failures (see module doc).

    ``max_tokens`` defaults to 64 + 200 per scene.

    Raises ``PlannerInputError`` for an empty brief or an out-of-range scene count.
    """
    # 1. check inputs
    check_inputs(brief, num_scenes)
    started = time.perf_counter()
    schema = StoryboardDraft.json_schema(num_scenes)
    max_tokens = max_tokens or 64 + PLANNER_MAX_TOKENS_PER_SCENE * num_scenes
    messages = planner_messages(brief, num_scenes)
    calls: list[LLMCall] = []
    # 2. draft, then one repair retry on invalid JSON
    try:
        reply = await _call(client, messages, "draft", max_tokens, schema, timeout_s, calls)
        try:
            draft = _parse_draft(reply, brief, num_scenes)
        except (ValidationError, ValueError) as first_error:
            error = _short_error(first_error)
            logger.info("planner JSON invalid (%s); one repair retry", error)
            repair = repair_messages(messages, reply, error, schema)
            reply = await _call(client, repair, "repair", max_tokens, schema, timeout_s, calls)
            try:
                draft = _parse_draft(reply, brief, num_scenes)
            except (ValidationError, ValueError) as second_error:
                plan = fallback_plan(
                    brief,
                    num_scenes,
                    f"planner LLM returned invalid JSON twice ({_short_error(second_error)}); "
                    "used the fallback plan (brief split over the scenes)",
                    calls,
                )
                plan.seconds = round(time.perf_counter() - started, 3)
                return plan
    except LLMUnavailableError as exc:
        plan = fallback_plan(
            brief, num_scenes, f"planner LLM unavailable ({exc}); used the fallback plan", calls
        )
        plan.seconds = round(time.perf_counter() - started, 3)
        return plan
    # 3. the model's plan
    scenes = [
        ScenePlan(index=index + 1, prompt=scene.prompt.strip(), shot_notes=scene.shot_notes.strip())
        for index, scene in enumerate(draft.scenes)
    ]
    return StoryboardPlan(
        brief=brief,
        scenes=scenes,
        prompt_version=PROMPT_VERSION,
        calls=calls,
        seconds=round(time.perf_counter() - started, 3),
    )


def _short_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{error.error_count()} validation error(s), first: {first.get('loc')} {first.get('msg')}"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON: {error.msg}"
    return str(error)[:200]
