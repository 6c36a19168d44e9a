"""The naive, seed-style pipeline: the baseline the Serve graph is measured against.

Same models and settings as the service, loaded once, in one process, no Ray: plan, then per scene
enhance the prompt, generate the N variations ONE AT A TIME, call the four scorers one after another
on EACH image, aggregate, keep the best and chain it into the next scene.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from agents.enhancer import EnhancerSettings, enhance_prompt
from agents.llm_client import build_chat_client
from agents.planner import plan_storyboard
from bench.common import load_generator
from generator import GenerationRequest
from scorers.aggregate import aggregate
from scorers.base import ScoreResult
from scorers.registry import SCORER_NAMES, build_scorer
from weights.profiles import get_profile


@dataclass
class BaselineRun:
    """Timings of one baseline generation."""

    scene_seconds: list[float] = field(default_factory=list)
    total_seconds: float = 0.0
    best_overall: list[float] = field(default_factory=list)


class NaivePipeline:
    """Models loaded once; everything else sequential."""

    def __init__(self, profile_name: str = "tiny", model_dir: Path | None = None) -> None:
        profile = get_profile(profile_name)
        device = "cuda" if profile.device == "cuda" else "cpu"
        self.generator = load_generator(profile_name, model_dir)
        # Scorer names double as profile roles.
        self.scorers = {
            name: build_scorer(
                name, profile.model(name), device=device, dtype=profile.dtype, model_dir=model_dir
            )
            for name in SCORER_NAMES
        }
        self.llm = build_chat_client(profile.model("llm"), model_dir=model_dir, device=device)

    def score_one_by_one(self, prompt: str, images: list[Image.Image]) -> dict[str, ScoreResult]:
        """Each scorer on each image separately, then stitched back into per-scorer results."""
        results: dict[str, ScoreResult] = {}
        for name, scorer in self.scorers.items():
            singles = [scorer.score(prompt, [image]) for image in images]
            results[name] = ScoreResult(
                scorer=name,
                raw=[s.raw[0] for s in singles],
                normalized=[s.normalized[0] for s in singles],
                seconds=sum(s.seconds for s in singles),
            )
        return results

    def run(
        self, brief: str, *, num_scenes: int, variations: int, max_iterations: int, seed: int = 0
    ) -> BaselineRun:
        """One advanced generation, start to finish."""
        run = BaselineRun()
        started = time.perf_counter()
        plan = asyncio.run(plan_storyboard(self.llm, brief, num_scenes))
        settings = EnhancerSettings(max_iterations=max_iterations)
        reference: bytes | None = None
        for scene in plan.scenes:
            scene_started = time.perf_counter()
            enhanced = asyncio.run(enhance_prompt(self.llm, scene.prompt, settings, context=brief))
            pngs = [
                self.generator.generate(
                    GenerationRequest(
                        prompt=enhanced.final_prompt,
                        negative_prompt=enhanced.negative_prompt or None,
                        seeds=[seed + k],
                        reference_png=reference,
                    )
                )
                .images[0]
                .png
                for k in range(variations)
            ]
            images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
            scores = aggregate(self.score_one_by_one(enhanced.final_prompt, images))
            reference = pngs[scores.best_index]
            run.best_overall.append(scores.best_overall)
            run.scene_seconds.append(time.perf_counter() - scene_started)
        run.total_seconds = time.perf_counter() - started
        return run

    def run_many(
        self, brief: str, generations: int, *, num_scenes: int, variations: int, max_iterations: int
    ) -> tuple[list[float], float]:
        """``generations`` runs one after another (seeds 0..n-1): every scene's seconds, and the wall time."""
        scene_seconds: list[float] = []
        started = time.perf_counter()
        for k in range(generations):
            run = self.run(
                brief, num_scenes=num_scenes, variations=variations, max_iterations=max_iterations, seed=k
            )
            scene_seconds.extend(run.scene_seconds)
        return scene_seconds, time.perf_counter() - started
