"""``scenechain eval``: advanced best-of-N against simple mode, over one prompt set, in-process.

What runs: the model cores directly (``generator.core.DiffusionGenerator``, ``scorers.registry.build_scorer``
and ``scorers.aggregate``) on one profile, without Ray, the HTTP service or the LLM prompt enhancer, so
the measurement isolates *best-of-N selection by the scorers* (advanced mode's enhancer is not part of
it). Per story of the prompt set (consecutive scenes sharing a ``story``):

- **simple**: one image per scene (seed ``base``), chained: scene k+1 is img2img from scene k's image;
- **advanced N**: N variations per scene (seeds ``base + k``, as the director draws them), all scored,
  the best by the overall score kept and chained, for every N of ``--variations``;
- **unchained** copies of simple and of the largest N: every scene text2img, no reference.

Every kept image is scored by every scorer (simple's images too, so they compare) and, when the
prompt names toy-world attributes, graded by the pixel judge (``eval.judge``), which never sees a
score. Reported per mode: mean per scorer, win rate of advanced over simple per scorer (paired by
scene; ties count half), judge accuracy, consecutive-scene consistency (cosine of the CLIPScore
model's image embeddings, chained vs unchained) and seconds per scene (generation + scoring).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

SCORE_TIE = 1e-6


class PromptItem(BaseModel):
    """One line of a prompt-set file (JSON Lines)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique id of the prompt.")
    prompt: str = Field(min_length=1, description="The scene prompt.")
    story: str = Field(default="", description="Scenes of one story are chained in 'scene' order.")
    scene: int = Field(default=0, ge=0, description="Order of the scene in its story.")
    category: str = Field(default="", description="DrawBench/PartiPrompts-style category, or toy split.")


class ModeSpec(BaseModel):
    """One way of making a storyboard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="'simple', 'advanced-N', with '-unchained' when scenes are not chained.")
    variations: int = Field(ge=1, description="Images per scene; the best by overall score is kept.")
    chained: bool = Field(description="Whether scene k+1 is img2img from scene k's kept image.")
    scored_choice: bool = Field(description="Whether the kept image is chosen by the scorers.")
    consistency_weight: float = Field(
        default=0.0, ge=0, le=1, description="Share of similarity to the previous kept scene in the overall."
    )


class SceneOutcome(BaseModel):
    """The kept image of one scene in one mode, with its scores."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(description="ModeSpec.name.")
    prompt_id: str = Field(description="PromptItem.id.")
    story: str = Field(description="Story of the prompt.")
    scene: int = Field(description="Order in the story.")
    category: str = Field(description="Category of the prompt.")
    kept_seed: int = Field(description="Seed of the kept image.")
    scores: dict[str, float] = Field(
        description="Scorer name -> 0-100 score of the kept image, and 'overall'."
    )
    judge: dict[str, bool] = Field(description="Attribute -> whether the pixel judge sees it; empty if none.")
    consistency: float | None = Field(
        description="Cosine of this image's CLIP embedding with the previous scene's kept image; None first."
    )
    seconds: float = Field(description="Generation + scoring wall time of this scene.")
    image: str = Field(description="Path of the kept image, relative to the output dir.")


def load_prompts(path: Path, limit: int | None = None) -> list[PromptItem]:
    """The prompt set; ``limit`` keeps the first stories whose scenes add up to at most ``limit`` prompts."""
    items = [PromptItem.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
    ids = [item.id for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}: prompt ids must be unique; repeated: {duplicates}")
    if limit is not None:
        kept: list[PromptItem] = []
        for story_items in group_stories(items).values():
            if len(kept) + len(story_items) > limit:
                break
            kept.extend(story_items)
        items = kept
    return items


def group_stories(items: Sequence[PromptItem]) -> dict[str, list[PromptItem]]:
    """Story -> its scenes in order (a prompt without a story is a story of its own)."""
    stories: dict[str, list[PromptItem]] = defaultdict(list)
    for item in items:
        stories[item.story or item.id].append(item)
    return {story: sorted(scenes, key=lambda item: item.scene) for story, scenes in stories.items()}


def build_modes(variations: Sequence[int], consistency_weight: float = 0.0) -> list[ModeSpec]:
    """simple, advanced-N per N (N = 1 is best-of-one: the same image as simple), the unchained pair, and
    with ``consistency_weight`` > 0 the largest N again with that consistency term."""
    if not variations or any(n < 1 for n in variations):
        raise ValueError(f"variations must be positive integers, got {list(variations)}")
    largest = max(variations)
    modes = [ModeSpec(name="simple", variations=1, chained=True, scored_choice=False)]
    modes += [
        ModeSpec(name=f"advanced-{n}", variations=n, chained=True, scored_choice=True)
        for n in sorted(set(variations))
    ]
    modes.append(ModeSpec(name="simple-unchained", variations=1, chained=False, scored_choice=False))
    if largest > 1:
        modes.append(
            ModeSpec(
                name=f"advanced-{largest}-unchained", variations=largest, chained=False, scored_choice=True
            )
        )
    if consistency_weight > 0 and largest > 1:
        modes.append(
            ModeSpec(
                name=f"advanced-{largest}-consistency-{consistency_weight:g}",
                variations=largest,
                chained=True,
                scored_choice=True,
                consistency_weight=consistency_weight,
            )
        )
    return modes


class EvalRunner:
    """Loads a profile's generator and scorers once; runs every mode over a prompt set."""

    def __init__(self, profile_name: str, *, model_dir: Path | None = None, steps: int | None = None) -> None:
        from generator.core import DiffusionGenerator  # noqa: PLC0415
        from scorers.catalogue import SCORER_NAMES  # noqa: PLC0415
        from scorers.registry import build_scorer  # noqa: PLC0415
        from weights.profiles import Role, get_profile  # noqa: PLC0415, F401

        self.profile = get_profile(profile_name)
        self.steps = steps
        self.generator = DiffusionGenerator(
            self.profile.model("diffusion"),
            self.profile.generation,
            device=self.profile.device,
            dtype=self.profile.dtype,
            model_dir=model_dir,
        )
        self.scorers = {
            name: build_scorer(
                name,
                self.profile.model(cast("Role", name)),  # every scorer is a profile role
                device=self.profile.device,
                dtype=self.profile.dtype,
                model_dir=model_dir,
            )
            for name in SCORER_NAMES
        }

    def embed(self, images: list[Any]) -> Any:
        """L2-normalised image embeddings of the CLIPScore model (the consistency measure)."""
        from scorers.clipscore import encode_images  # noqa: PLC0415

        clipscore = self.scorers["clipscore"]
        bundle = getattr(clipscore, "bundle", None)
        if bundle is None:
            raise ValueError("consistency needs the clipscore scorer's open_clip model")
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            return encode_images(bundle, images)

    def score_all(
        self, prompt: str, images: list[Any], reference: Any = None, consistency_weight: float = 0.0
    ) -> dict[str, list[float]]:
        """Scorer name -> 0-100 per image, plus 'overall' (the default weights' aggregate, with the
        consistency term when a reference and a weight are given, as the director computes it)."""
        from scorers.aggregate import aggregate  # noqa: PLC0415
        from scorers.base import ScoreResult  # noqa: PLC0415

        compare = reference is not None and consistency_weight > 0
        results: dict[str, ScoreResult | BaseException | None] = {}
        for name, scorer in self.scorers.items():
            try:
                if compare and name == "clipscore":
                    results[name] = scorer.score(prompt, images, reference=reference)  # type: ignore[call-arg]
                else:
                    results[name] = scorer.score(prompt, images)
            except Exception as exc:  # a failing scorer is dropped, as in the service
                results[name] = exc
        clip_result = results.get("clipscore")
        consistency = (
            clip_result.extra.get("consistency") if compare and isinstance(clip_result, ScoreResult) else None
        )
        combined = aggregate(results, consistency=consistency, consistency_weight=consistency_weight)
        table = {
            name: list(result.normalized)
            for name, result in results.items()
            if isinstance(result, ScoreResult)
        }
        table["overall"] = [scores.model_dump()["overall"] for scores in combined.per_image]
        return table

    def run_mode(
        self, mode: ModeSpec, stories: dict[str, list[PromptItem]], base_seed: int, out_dir: Path
    ) -> list[SceneOutcome]:
        """Every story's scenes in one mode; kept images saved under ``out_dir/images/<mode>/``."""
        from eval.judge import judge_prompt  # noqa: PLC0415
        from generator.core import GenerationRequest, decode_png  # noqa: PLC0415

        image_dir = out_dir / "images" / mode.name
        image_dir.mkdir(parents=True, exist_ok=True)
        outcomes: list[SceneOutcome] = []
        for scenes in stories.values():
            reference: bytes | None = None
            previous_embed: Any = None
            for item in scenes:
                started = time.perf_counter()
                # 1. N seeded variations (img2img from the previous kept image when chained)
                seeds = [base_seed + k for k in range(mode.variations)]
                result = self.generator.generate(
                    GenerationRequest(
                        prompt=item.prompt,
                        seeds=seeds,
                        reference_png=reference if mode.chained else None,
                        steps=self.steps,
                    )
                )
                images = [decode_png(image.png) for image in result.images]
                # 2. score every variation; advanced keeps the best overall (ties: first seed)
                previous = decode_png(reference) if reference is not None and mode.chained else None
                table = self.score_all(item.prompt, images, previous, mode.consistency_weight)
                best = (
                    max(range(len(images)), key=lambda k: (table["overall"][k], -k))
                    if mode.scored_choice
                    else 0
                )
                seconds = time.perf_counter() - started
                kept = images[best]
                # 3. consistency with the previous kept scene, and the judge
                embed = self.embed([kept])[0]
                consistency = float(embed @ previous_embed) if previous_embed is not None else None
                name = f"{item.id}.png"
                kept.save(image_dir / name)
                outcomes.append(
                    SceneOutcome(
                        mode=mode.name,
                        prompt_id=item.id,
                        story=item.story,
                        scene=item.scene,
                        category=item.category,
                        kept_seed=seeds[best],
                        scores={scorer: values[best] for scorer, values in table.items()},
                        judge=judge_prompt(item.prompt, kept),
                        consistency=consistency,
                        seconds=round(seconds, 4),
                        image=f"images/{mode.name}/{name}",
                    )
                )
                reference = result.images[best].png
                previous_embed = embed
        return outcomes


# ---- summary ---------------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarise(outcomes: list[SceneOutcome], modes: list[ModeSpec]) -> dict[str, Any]:
    """Per mode: scorer means, win rates over simple, judge accuracy, consistency, seconds per scene."""
    by_mode: dict[str, dict[str, SceneOutcome]] = defaultdict(dict)
    for outcome in outcomes:
        by_mode[outcome.mode][outcome.prompt_id] = outcome
    summary: dict[str, Any] = {}
    for mode in modes:
        rows = list(by_mode[mode.name].values())
        scorers = sorted({name for row in rows for name in row.scores})
        means = {name: _mean([row.scores[name] for row in rows if name in row.scores]) for name in scorers}
        baseline_name = "simple" if mode.chained else "simple-unchained"
        baseline = by_mode.get(baseline_name, {})
        wins: dict[str, float | None] = {}
        for name in scorers:
            pairs = [
                (row.scores[name], baseline[row.prompt_id].scores[name])
                for row in rows
                if row.prompt_id in baseline and name in baseline[row.prompt_id].scores and name in row.scores
            ]
            points = [1.0 if a > b + SCORE_TIE else 0.5 if abs(a - b) <= SCORE_TIE else 0.0 for a, b in pairs]
            wins[name] = _mean(points)
        judge: dict[str, float | None] = {}
        for attribute in ("colour", "shape", "background"):
            judge[attribute] = _mean([float(row.judge[attribute]) for row in rows if attribute in row.judge])
        judged = [row for row in rows if row.judge]
        judge["all_attributes"] = _mean([float(all(row.judge.values())) for row in judged])
        held_out = [row for row in judged if row.category == "held-out"]
        for attribute in ("colour", "shape"):
            judge[f"held_out_{attribute}"] = _mean(
                [float(row.judge[attribute]) for row in held_out if attribute in row.judge]
            )
        summary[mode.name] = {
            "variations": mode.variations,
            "chained": mode.chained,
            "scenes": len(rows),
            "mean": means,
            "win_rate_vs_simple": wins if mode.scored_choice else None,
            "judge_accuracy": judge if judged else None,
            "consistency": _mean([row.consistency for row in rows if row.consistency is not None]),
            "seconds_per_scene": _mean([row.seconds for row in rows]),
        }
    return summary


def run_eval(
    prompts_path: Path,
    profile: str,
    variations: Sequence[int],
    out_dir: Path,
    *,
    base_seed: int = 0,
    limit: int | None = None,
    steps: int | None = None,
    model_dir: Path | None = None,
    consistency_weight: float = 0.0,
) -> dict[str, Any]:
    """Run every mode over the prompt set; write results.json, plots and report.html; return the JSON."""
    from eval.report import write_plots, write_report  # noqa: PLC0415

    # 1. inputs and models
    items = load_prompts(prompts_path, limit)
    stories = group_stories(items)
    modes = build_modes(variations, consistency_weight)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runner = EvalRunner(profile, model_dir=model_dir, steps=steps)
    load_seconds = time.perf_counter() - started
    # 2. every mode over every story
    outcomes: list[SceneOutcome] = []
    for mode in modes:
        logger.info("eval: mode %s over %d prompts", mode.name, len(items))
        outcomes.extend(runner.run_mode(mode, stories, base_seed, out_dir))
    # 3. summary, files
    payload = {
        "what": "advanced best-of-N vs simple, in-process cores (no Ray, no HTTP, no LLM enhancer)",
        "profile": profile,
        "prompts": str(prompts_path),
        "prompt_count": len(items),
        "stories": len(stories),
        "variations": sorted(set(variations)),
        "base_seed": base_seed,
        "steps": steps if steps is not None else runner.profile.generation.steps,
        "guidance_scale": runner.profile.generation.guidance_scale,
        "strength": runner.profile.generation.strength,
        "load_seconds": round(load_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "summary": summarise(outcomes, modes),
        "scenes": [outcome.model_dump() for outcome in outcomes],
    }
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
    payload["plots"] = write_plots(payload, out_dir)
    write_report(payload, out_dir)
    return payload
