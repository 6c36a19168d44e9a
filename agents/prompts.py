"""The agents' prompts, versioned. Bump ``PROMPT_VERSION`` whenever any text here changes: the
version goes into every trace, so a trace always says which prompts produced it."""

from __future__ import annotations

import json
from typing import Any

from agents.schemas import CRITERIA, ChatMessage

PROMPT_VERSION = "2026-11-25.1"

# Used when the critic gives none (or an unusable one).
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, low quality, low resolution, distorted, deformed, extra limbs, bad anatomy, "
    "watermark, text artifacts, jpeg artifacts, oversaturated, cropped, out of frame"
)

PLANNER_SYSTEM = (
    "You are a storyboard artist for advertising. Split the ad brief into exactly {num_scenes} "
    "consecutive scenes that tell one visual story. For each scene write a text-to-image prompt "
    "(subject, action, setting, mood; one or two sentences) and short shot notes (shot size, camera "
    "angle, movement). Keep the product and brand consistent across scenes. "
    "Reply with only a JSON object of this form: "
    '{{"scenes": [{{"prompt": "...", "shot_notes": "..."}}]}}'
)

PLANNER_USER = "Ad brief: {brief}\nNumber of scenes: {num_scenes}"

CINEMATOGRAPHER_SYSTEM = (
    "You are an award-winning commercial cinematographer. Rewrite the image prompt you are given "
    "into one rich text-to-image prompt. Keep the original subject and brand. Add: subject details "
    "(appearance, clothing, expression), camera and shot type, lens (focal length, aperture), "
    "lighting (quality, direction, time of day), composition (framing, depth of field), and "
    "setting (location, atmosphere). Reply with the rewritten prompt only, one paragraph, under "
    "90 words, no preamble."
)

CINEMATOGRAPHER_USER = "Image prompt: {prompt}"
CINEMATOGRAPHER_CONTEXT = "\nStoryboard context: {context}"
CINEMATOGRAPHER_FEEDBACK = "\nA reviewer scored your last version {overall:.0f}/100 and said: {feedback}"

CRITIC_SYSTEM = (
    "You are a senior prompt engineer reviewing text-to-image prompts for advertising. Score the "
    "prompt from 0 to 100 on each criterion: completeness (subject, action and setting present), "
    "specificity (concrete visual detail), cinematography (camera, lens, lighting, composition), "
    "professionalism (clear, professional ad language), brand_alignment (faithful to the original "
    "brief). Give one or two sentences of feedback and a short comma-separated negative prompt "
    "(what the image must avoid). Reply with only a JSON object with the keys: "
    + ", ".join(CRITERIA)
    + ", feedback, negative_prompt."
)

CRITIC_USER = "Original brief prompt: {original}\nPrompt to review: {candidate}"

REPAIR_USER = (
    "Your reply was not valid JSON for the required schema ({error}). Reply again with only the "
    "JSON object, no other text. Schema: {schema}"
)

JSON_INSTRUCTION = "Reply with only a JSON object that matches this JSON schema, no other text: {schema}"


def planner_messages(brief: str, num_scenes: int) -> list[ChatMessage]:
    """Messages asking for a storyboard of ``num_scenes`` scenes."""
    return [
        ChatMessage(role="system", content=PLANNER_SYSTEM.format(num_scenes=num_scenes)),
        ChatMessage(role="user", content=PLANNER_USER.format(brief=brief, num_scenes=num_scenes)),
    ]


def cinematographer_messages(
    prompt: str, *, context: str = "", feedback: str = "", previous_overall: float | None = None
) -> list[ChatMessage]:
    """Messages asking the Cinematographer to rewrite ``prompt`` (with the critic's feedback, if any)."""
    user = CINEMATOGRAPHER_USER.format(prompt=prompt)
    if context:
        user += CINEMATOGRAPHER_CONTEXT.format(context=context)
    if feedback and previous_overall is not None:
        user += CINEMATOGRAPHER_FEEDBACK.format(overall=previous_overall, feedback=feedback)
    return [
        ChatMessage(role="system", content=CINEMATOGRAPHER_SYSTEM),
        ChatMessage(role="user", content=user),
    ]


def critic_messages(original: str, candidate: str) -> list[ChatMessage]:
    """Messages asking the Prompt Engineer to score ``candidate`` against ``original``."""
    return [
        ChatMessage(role="system", content=CRITIC_SYSTEM),
        ChatMessage(role="user", content=CRITIC_USER.format(original=original, candidate=candidate)),
    ]


def repair_messages(
    messages: list[ChatMessage], bad_reply: str, error: str, schema: dict[str, Any]
) -> list[ChatMessage]:
    """The failed exchange plus a request to answer again with valid JSON only."""
    return [
        *messages,
        ChatMessage(role="assistant", content=bad_reply),
        ChatMessage(role="user", content=REPAIR_USER.format(error=error[:200], schema=json.dumps(schema))),
    ]
