"""Two-agent prompt enhancer: the Cinematographer rewrites, the Prompt Engineer scores, repeat.

Loop (per scene):
1. Cinematographer (temperature ~0.7) rewrites the best prompt so far, with the critic's feedback.
   A reply that is empty, not text, or drops the original subject (fewer than
   ``min_subject_retention`` of the original's content words) is rejected and the previous prompt
   is scored instead — the tiny random LM produces exactly such replies.
2. Prompt Engineer (temperature ~0.3) returns JSON scores (``agents.schemas.Critique``), asked for
   with a JSON schema. Invalid JSON → one repair retry → the documented rubric (``rubric_scores``),
   marked ``critic_fallback_used``.
3. overall = weighted mean of the five scores (``DEFAULT_SCORE_WEIGHTS``). Stop when overall ≥
   ``approve_threshold`` ("approved"), when it beats the best so far by less than ``min_gain``
   ("plateau", from iteration 2), or after ``max_iterations``. The best-scored prompt wins if it
   scores at least ``min_score_to_replace`` (default 50); otherwise the original prompt is kept
   (the original is never scored: the trace contract has no file for it).

Never raises model failures: an unavailable / timed-out LLM stops the loop with ``degraded=True``
and stop reason "degraded"; the final prompt is then the best scored one so far, or the original
prompt when no iteration completed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from agents.llm_client import ChatClient, extract_json
from agents.prompts import (
    DEFAULT_NEGATIVE_PROMPT,
    PROMPT_VERSION,
    cinematographer_messages,
    critic_messages,
    repair_messages,
)
from agents.schemas import CRITERIA, DEFAULT_SCORE_WEIGHTS, ChatMessage, Critique, IterationRecord, LLMCall

logger = logging.getLogger(__name__)

__all__ = [
    "EnhancementResult",
    "EnhancerSettings",
    "IterationRecord",
    "clean_candidate",
    "enhance_prompt",
    "overall_score",
    "rubric_scores",
]

StopReason = Literal["approved", "plateau", "max_iterations", "degraded"]
MAX_PROMPT_CHARS = 1200

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "by",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "their",
        "his",
        "her",
        "our",
        "your",
        "my",
        "scene",
        "shot",
        "image",
        "photo",
        "picture",
    ]
)

# Rubric vocabulary: one group per cinematography aspect; a prompt scores 25 per group it touches.
_CINEMATOGRAPHY_TERMS: dict[str, tuple[str, ...]] = {
    "camera": (
        "shot",
        "close-up",
        "closeup",
        "wide",
        "angle",
        "aerial",
        "tracking",
        "camera",
        "pov",
        "overhead",
        "medium",
        "dolly",
        "low-angle",
        "eye level",
        "handheld",
    ),
    "lens": (
        "mm",
        "lens",
        "aperture",
        "f/",
        "bokeh",
        "depth of field",
        "telephoto",
        "wide-angle",
        "macro",
        "anamorphic",
        "focus",
    ),
    "lighting": (
        "light",
        "lighting",
        "lit",
        "sunlight",
        "golden hour",
        "backlit",
        "shadow",
        "glow",
        "softbox",
        "rim",
        "neon",
        "dramatic",
        "sunset",
        "sunrise",
        "ambient",
        "illuminat",
    ),
    "composition": (
        "composition",
        "framing",
        "framed",
        "rule of thirds",
        "foreground",
        "background",
        "centered",
        "symmetr",
        "leading lines",
        "negative space",
        "silhouette",
    ),
}


class EnhancerSettings(BaseModel):
    """How hard the enhancer tries; ``advanced`` generation settings map onto this."""

    max_iterations: int = Field(default=4, description="Cinematographer/critic rounds at most.", ge=1, le=10)
    approve_threshold: float = Field(
        default=85.0, description="Overall score that approves a prompt.", ge=0, le=100
    )
    min_gain: float = Field(
        default=2.0, description="Smaller gains over the best so far stop the loop.", ge=0
    )
    cinematographer_temperature: float = Field(
        default=0.7, description="Rewrite sampling temperature.", ge=0, le=2
    )
    critic_temperature: float = Field(default=0.3, description="Critic sampling temperature.", ge=0, le=2)
    max_tokens: int = Field(default=400, description="Generation budget per LLM call.", ge=16, le=4096)
    timeout_s: float = Field(default=60.0, description="Per LLM call timeout in seconds.", gt=0)
    min_score_to_replace: float = Field(
        default=50.0,
        description="A rewrite must score at least this to replace the original prompt (unscored).",
        ge=0,
        le=100,
    )
    min_subject_retention: float = Field(
        default=0.5, description="Share of the original's content words a rewrite must keep.", ge=0, le=1
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS),
        description="Criterion -> weight of the overall score (normalized to sum 1).",
    )

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        if set(weights) != set(CRITERIA):
            raise ValueError(f"weights must have exactly the keys {list(CRITERIA)}, got {sorted(weights)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        return weights


class EnhancementResult(BaseModel):
    """Everything the enhancer did for one prompt; ``trace_files()`` renders the trace."""

    original_prompt: str = Field(description="Prompt before enhancement.")
    final_prompt: str = Field(description="Best-scored prompt (the original when none was usable).")
    negative_prompt: str = Field(description="Negative prompt for the image model.")
    negative_prompt_source: Literal["critic", "default"] = Field(
        description="Where the negative prompt came from."
    )
    iterations: list[IterationRecord] = Field(default_factory=list, description="Completed iterations.")
    best_iteration: int | None = Field(default=None, description="Highest-scored iteration, if any.")
    best_overall: float | None = Field(default=None, description="Its overall score.")
    final_iteration: int | None = Field(
        default=None, description="Iteration whose prompt is final; None: the original prompt."
    )
    approved: bool = Field(description="True when the final prompt reached the threshold.")
    stop_reason: StopReason = Field(description="Why the loop stopped.")
    degraded: bool = Field(description="True when the LLM failed and the loop was cut short.")
    critic_fallback_used: bool = Field(default=False, description="True when any iteration used the rubric.")
    warnings: list[str] = Field(default_factory=list, description="What went wrong, for the user.")
    failed_call: LLMCall | None = Field(default=None, description="The LLM call that failed, if any.")
    incomplete_calls: list[LLMCall] = Field(
        default_factory=list, description="Calls of the iteration cut short by the failure (failed one last)."
    )
    prompt_version: str = Field(description="Version of agents.prompts used.")
    settings: EnhancerSettings = Field(description="Settings of the run.")
    context: str = Field(default="", description="Storyboard context given to the Cinematographer.")
    seconds: float = Field(description="Wall time of the enhancement.")

    def summary(self) -> dict[str, Any]:
        """The ``prompt_trace_summary.json`` content."""
        return {
            "prompt_version": self.prompt_version,
            "original_prompt": self.original_prompt,
            "final_prompt": self.final_prompt,
            "negative_prompt": self.negative_prompt,
            "negative_prompt_source": self.negative_prompt_source,
            "approved": self.approved,
            "approve_threshold": self.settings.approve_threshold,
            "stop_reason": self.stop_reason,
            "degraded": self.degraded,
            "critic_fallback_used": self.critic_fallback_used,
            "best_iteration": self.best_iteration,
            "best_overall": self.best_overall,
            "final_iteration": self.final_iteration,
            "warnings": self.warnings,
            "seconds": self.seconds,
            "settings": self.settings.model_dump(),
            "context": self.context,
            "iterations": [
                {
                    "iteration": it.iteration,
                    "scores": it.scores,
                    "overall": it.overall,
                    "candidate_prompt": it.candidate_prompt,
                    "candidate_rejected": it.candidate_rejected,
                    "rejection_reason": it.rejection_reason,
                    "critic_repair_used": it.critic_repair_used,
                    "critic_fallback_used": it.critic_fallback_used,
                    "cinematographer_seconds": it.cinematographer_seconds,
                    "critic_seconds": it.critic_seconds,
                    "seconds": it.seconds,
                    "calls": [call.model_dump() for call in it.calls],
                }
                for it in self.iterations
            ],
            "failed_call": self.failed_call.model_dump() if self.failed_call else None,
            "incomplete_calls": [call.model_dump() for call in self.incomplete_calls],
        }

    def trace_files(self) -> dict[str, str]:
        """File name → text: ``00_original_prompt.txt``, ``01_agent1_iteration_1.txt``,
        ``02_agent2_iteration_1.txt``, ... , ``final_enhanced_prompt.txt``, ``prompt_trace_summary.json``."""
        files = {"00_original_prompt.txt": self.original_prompt + "\n"}
        for it in self.iterations:
            files[f"{2 * it.iteration - 1:02d}_agent1_iteration_{it.iteration}.txt"] = (
                it.cinematographer_output + "\n"
            )
            critic = {
                "scores": it.scores,
                "overall": it.overall,
                "feedback": it.feedback,
                "negative_prompt": it.negative_prompt,
                "critic_repair_used": it.critic_repair_used,
                "critic_fallback_used": it.critic_fallback_used,
                "raw_response": it.critic_raw,
            }
            files[f"{2 * it.iteration:02d}_agent2_iteration_{it.iteration}.txt"] = (
                json.dumps(critic, indent=2) + "\n"
            )
        files["final_enhanced_prompt.txt"] = self.final_prompt + "\n"
        files["prompt_trace_summary.json"] = json.dumps(self.summary(), indent=2) + "\n"
        return files


# --------------------------------------------------------------------------------------------
# scoring helpers (pure)
# --------------------------------------------------------------------------------------------


def overall_score(scores: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean of the criterion scores, 0-100, rounded to 0.01."""
    total = sum(weights.values())
    return round(sum(scores[name] * weights[name] for name in CRITERIA) / total, 2)


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS]


def subject_retention(original: str, candidate: str) -> float:
    """Share of the original's content words found in the candidate (5-letter prefixes match,
    so "runners" keeps "runner"); 1.0 when the original has none."""
    original_words = set(_content_words(original))
    if not original_words:
        return 1.0
    candidate_stems = {w[:5] for w in _content_words(candidate)}
    return sum(1 for w in original_words if w[:5] in candidate_stems) / len(original_words)


def rubric_scores(candidate: str, original: str) -> dict[str, float]:
    """The documented fallback critic, used when the LLM critic's JSON stays invalid.

    - completeness: 30 + 50 × subject retention + up to 20 for length (1 point per 3 words);
    - specificity: 20 + 3 per distinct content word, capped at 100;
    - cinematography: 25 per aspect touched (camera / lens / lighting / composition vocabulary);
    - professionalism: 40 + 30 if 12-120 words + 30 × (1 − word repetition rate);
    - brand_alignment: 100 × subject retention.
    """
    words = candidate.split()
    content = _content_words(candidate)
    retention = subject_retention(original, candidate)
    lowered = candidate.lower()
    aspects = sum(1 for terms in _CINEMATOGRAPHY_TERMS.values() if any(t in lowered for t in terms))
    repetition = 1 - len(set(content)) / len(content) if content else 1.0
    scores = {
        "completeness": 30 + 50 * retention + min(20.0, len(words) / 3),
        "specificity": 20 + 3 * len(set(content)),
        "cinematography": 25.0 * aspects,
        "professionalism": 40 + (30 if 12 <= len(words) <= 120 else 0) + 30 * (1 - repetition),
        "brand_alignment": 100 * retention,
    }
    return {name: round(max(0.0, min(100.0, value)), 2) for name, value in scores.items()}


_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:rewritten|enhanced|improved|final|new)?\s*(?:image\s+)?prompt(?:\*\*)?\s*:\s*", re.I
)


def clean_candidate(reply: str, original: str, min_retention: float) -> tuple[str, str]:
    """(cleaned prompt, rejection reason or ""): strips fences, labels and quotes; rejects replies
    that are too short, not mostly text, or drop the original subject."""
    text = re.sub(r"```[a-z]*", "", reply).strip()
    text = _LABEL.sub("", text).strip().strip('"').strip("'").strip()
    text = re.sub(r"\s+", " ", text)
    if len(text) > MAX_PROMPT_CHARS:
        cut = text[:MAX_PROMPT_CHARS]
        text = cut[: cut.rfind(". ") + 1] if ". " in cut else cut
    words = text.split()
    if len(words) < 5:
        return text, f"reply too short ({len(words)} words)"
    letters = sum(c.isalpha() or c.isspace() for c in text)
    if letters / len(text) < 0.75:
        return text, f"reply is not mostly text ({letters / len(text):.0%} letters)"
    retention = subject_retention(original, text)
    if retention < min_retention:
        return text, f"reply drops the subject (keeps {retention:.0%} of the original's words)"
    return text, ""


def _usable_negative_prompt(text: str) -> bool:
    """A comma-separated list of short items (at most 5 words each), mostly letters."""
    stripped = text.strip()
    if len(stripped) < 3 or sum(c.isalpha() or c in " ,-" for c in stripped) / len(stripped) < 0.9:
        return False
    items = [item.strip() for item in stripped.split(",") if item.strip()]
    return bool(items) and all(len(item.split()) <= 5 for item in items)


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------


def _accepted(best: IterationRecord | None, settings: EnhancerSettings) -> IterationRecord | None:
    """The best iteration if its score clears ``min_score_to_replace``, else None (keep the original)."""
    return best if best is not None and best.overall >= settings.min_score_to_replace else None


class _LLMFailed(Exception):
    """Internal: an LLM call failed; carries the record of the failed call."""

    def __init__(self, call: LLMCall):
        super().__init__(call.error)
        self.call = call


async def _chat(
    client: ChatClient,
    agent: Literal["cinematographer", "prompt_engineer"],
    purpose: str,
    messages: list[ChatMessage],
    *,
    temperature: float,
    settings: EnhancerSettings,
    json_schema: dict[str, Any] | None,
    calls: list[LLMCall],
) -> str:
    started = time.perf_counter()
    call = LLMCall(
        agent=agent,
        purpose=purpose,
        messages=messages,
        temperature=temperature,
        max_tokens=settings.max_tokens,
        json_schema=json_schema is not None,
        seconds=0.0,
    )
    try:
        reply = await client.chat(
            messages,
            temperature=temperature,
            max_tokens=settings.max_tokens,
            json_schema=json_schema,
            timeout_s=settings.timeout_s,
        )
    # Any client failure is a model failure to us (a third-party client may raise anything);
    # the trace keeps the exception type. Cancellation (BaseException) still propagates.
    except Exception as exc:
        call.error = f"{type(exc).__name__}: {exc}"
        call.seconds = round(time.perf_counter() - started, 3)
        raise _LLMFailed(call) from exc
    call.response = reply if isinstance(reply, str) else ""
    call.seconds = round(time.perf_counter() - started, 3)
    calls.append(call)
    return call.response


def _parse_critique(reply: str) -> Critique:
    return Critique.model_validate_json(extract_json(reply) or reply)


def _short_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{error.error_count()} error(s); first: {'.'.join(map(str, first.get('loc', ()))) or 'root'}: {first.get('msg')}"


async def _critique(
    client: ChatClient, original: str, candidate: str, settings: EnhancerSettings, calls: list[LLMCall]
) -> tuple[dict[str, float], str, str, str, bool, bool]:
    """(scores, raw text, feedback, negative prompt, repair used, fallback used)."""
    schema = Critique.json_schema()
    messages = critic_messages(original, candidate)
    kwargs: dict[str, Any] = {
        "temperature": settings.critic_temperature,
        "settings": settings,
        "json_schema": schema,
        "calls": calls,
    }
    reply = await _chat(client, "prompt_engineer", "critique", messages, **kwargs)
    try:
        critique = _parse_critique(reply)
        return critique.scores(), reply, critique.feedback, critique.negative_prompt, False, False
    except ValidationError as first_error:
        error = _short_error(first_error)
    repair = repair_messages(messages, reply, error, schema)
    second = await _chat(client, "prompt_engineer", "repair", repair, **kwargs)
    raw = f"{reply}\n--- repair retry ---\n{second}"
    try:
        critique = _parse_critique(second)
        return critique.scores(), raw, critique.feedback, critique.negative_prompt, True, False
    except ValidationError as second_error:
        feedback = f"critic JSON invalid twice ({_short_error(second_error)}); scored by the rubric fallback"
        return rubric_scores(candidate, original), raw, feedback, "", True, True


async def enhance_prompt(
    client: ChatClient,
    prompt: str,
    settings: EnhancerSettings | None = None,
    *,
    context: str = "",
    generation_id: str = "",
) -> EnhancementResult:
    """Run the two-agent loop on ``prompt`` (see module doc). Never raises model failures."""
    settings = settings or EnhancerSettings()
    started = time.perf_counter()
    log_prefix = f"[{generation_id}] " if generation_id else ""
    iterations: list[IterationRecord] = []
    warnings: list[str] = []
    best: IterationRecord | None = None
    stop_reason: StopReason = "max_iterations"
    failed_call: LLMCall | None = None
    incomplete_calls: list[LLMCall] = []

    for number in range(1, settings.max_iterations + 1):
        iteration_started = time.perf_counter()
        calls: list[LLMCall] = []
        accepted = _accepted(best, settings)
        base_prompt = accepted.candidate_prompt if accepted else prompt
        try:
            # 1. Cinematographer rewrites the best prompt so far
            messages = cinematographer_messages(
                base_prompt,
                context=context,
                # rubric "feedback" is our note, not a reviewer's: do not feed it to the model
                feedback=best.feedback if best and not best.critic_fallback_used else "",
                previous_overall=best.overall if best else None,
            )
            reply = await _chat(
                client,
                "cinematographer",
                "rewrite",
                messages,
                temperature=settings.cinematographer_temperature,
                settings=settings,
                json_schema=None,
                calls=calls,
            )
            cinematographer_seconds = time.perf_counter() - iteration_started
            candidate, rejection = clean_candidate(reply, prompt, settings.min_subject_retention)
            if rejection:
                warnings.append(
                    f"iteration {number}: Cinematographer reply rejected ({rejection}); kept the previous prompt"
                )
                candidate = base_prompt
            # 2. Prompt Engineer scores it
            critic_started = time.perf_counter()
            scores, critic_raw, feedback, negative, repaired, fallback = await _critique(
                client, prompt, candidate, settings, calls
            )
            critic_seconds = time.perf_counter() - critic_started
        except _LLMFailed as failure:
            failed_call = failure.call
            incomplete_calls = [*calls, failure.call]
            stop_reason = "degraded"
            warnings.append(
                f"LLM failed in iteration {number} ({failure.call.agent}: {failure.call.error}); "
                + ("kept the best prompt so far" if best else "used the original prompt")
            )
            logger.warning("%senhancer degraded: %s", log_prefix, failure.call.error)
            break
        if fallback:
            warnings.append(f"iteration {number}: {feedback}")
        # 3. overall score, best so far, stop rules
        record = IterationRecord(
            iteration=number,
            cinematographer_output=reply,
            candidate_prompt=candidate,
            candidate_rejected=bool(rejection),
            rejection_reason=rejection,
            critic_raw=critic_raw,
            scores=scores,
            overall=overall_score(scores, settings.weights),
            feedback=feedback,
            negative_prompt=negative,
            critic_repair_used=repaired,
            critic_fallback_used=fallback,
            cinematographer_seconds=round(cinematographer_seconds, 3),
            critic_seconds=round(critic_seconds, 3),
            seconds=round(time.perf_counter() - iteration_started, 3),
            calls=calls,
        )
        iterations.append(record)
        logger.info(
            "%senhancer iteration %d: overall %.1f%s",
            log_prefix,
            number,
            record.overall,
            " (rubric fallback)" if fallback else "",
        )
        previous_best = best.overall if best else None
        if best is None or record.overall > best.overall:
            best = record
        if record.overall >= settings.approve_threshold:
            stop_reason = "approved"
            break
        if previous_best is not None and record.overall - previous_best < settings.min_gain:
            stop_reason = "plateau"
            break

    # 4. assemble: the best-scored prompt if it clears the floor, its negative prompt when usable
    final = _accepted(best, settings)
    if best is not None and final is None:
        warnings.append(
            f"no rewrite scored at least {settings.min_score_to_replace:g} (best {best.overall:g}); "
            "kept the original prompt"
        )
    if final is not None and _usable_negative_prompt(final.negative_prompt):
        negative_source: Literal["critic", "default"] = "critic"
        negative_prompt = final.negative_prompt.strip()
    else:
        negative_prompt, negative_source = DEFAULT_NEGATIVE_PROMPT, "default"
    return EnhancementResult(
        original_prompt=prompt,
        final_prompt=final.candidate_prompt if final else prompt,
        final_iteration=final.iteration if final else None,
        negative_prompt=negative_prompt,
        negative_prompt_source=negative_source,
        iterations=iterations,
        best_iteration=best.iteration if best else None,
        best_overall=best.overall if best else None,
        approved=final is not None and final.overall >= settings.approve_threshold,
        stop_reason=stop_reason,
        degraded=stop_reason == "degraded",
        critic_fallback_used=any(it.critic_fallback_used for it in iterations),
        warnings=warnings,
        failed_call=failed_call,
        incomplete_calls=incomplete_calls,
        prompt_version=PROMPT_VERSION,
        settings=settings,
        context=context,
        seconds=round(time.perf_counter() - started, 3),
    )
