"""Fakes of the model ports for Director/ingress unit tests (no Ray, no models); no tests here."""

from __future__ import annotations

import asyncio
import hashlib
import io

from PIL import Image

from director.ports import EnhanceOutcome, PlannedScene, PlanOutcome, ScorerFailed
from generator.core import GeneratedImage, GenerationRequest, GenerationResult
from scorers.base import ScoreResult


def fake_png(*parts: object) -> bytes:
    """A tiny PNG whose colour is a hash of ``parts`` (distinct inputs, distinct bytes)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(digest[:3])).save(buffer, format="PNG")
    return buffer.getvalue()


class FakePorts:
    """Records calls; ``fail_scorers``/``fail_llm``/``fail_plan`` inject the faults."""

    def __init__(
        self,
        *,
        fail_scorers: tuple[str, ...] = (),
        fail_llm: bool = False,
        fail_plan: bool = False,
        scores: dict[str, list[float]] | None = None,
        consistency: list[float] | None = None,
    ) -> None:
        self.fail_scorers = fail_scorers
        self.fail_llm = fail_llm
        self.fail_plan = fail_plan
        self.scores = scores or {}
        # clipscore's extra["consistency"] when a reference is sent (default: the first image is most alike)
        self.consistency = consistency
        self.references: list[tuple[str, bytes]] = []
        self.generate_calls: list[GenerationRequest] = []
        self.enhance_calls: list[tuple[str, int, str, int]] = []
        self.score_calls: list[tuple[str, str, int]] = []

    async def plan(self, brief: str, num_scenes: int, seed: int) -> PlanOutcome:
        if self.fail_plan:
            raise RuntimeError("planner deployment down")
        return PlanOutcome(
            scenes=[
                PlannedScene(index=n, prompt=f"{brief} — scene {n}", shot_notes=f"shot {n}")
                for n in range(1, num_scenes + 1)
            ]
        )

    async def enhance(
        self, prompt: str, max_iterations: int, context: str, seed: int, generation_id: str
    ) -> EnhanceOutcome:
        self.enhance_calls.append((prompt, max_iterations, context, seed))
        if self.fail_llm:
            return EnhanceOutcome(
                original_prompt=prompt,
                final_prompt=prompt,
                degraded=True,
                stop_reason="llm_unavailable",
                warnings=["LLM unavailable: injected"],
                trace_files={
                    "00_original_prompt.txt": prompt,
                    "final_enhanced_prompt.txt": prompt,
                    "prompt_trace_summary.json": "{}",
                },
            )
        final = f"{prompt}, cinematic lighting"
        return EnhanceOutcome(
            original_prompt=prompt,
            final_prompt=final,
            iterations=1,
            approved=True,
            stop_reason="approved",
            trace_files={
                "00_original_prompt.txt": prompt,
                "01_agent1_iteration_1.txt": "critique",
                "02_agent2_iteration_1.txt": final,
                "final_enhanced_prompt.txt": final,
                "prompt_trace_summary.json": "{}",
            },
        )

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.generate_calls.append(request)
        reference = hashlib.sha256(request.reference_png).hexdigest() if request.reference_png else None
        images = [GeneratedImage(seed=s, png=fake_png(request.prompt, s, reference)) for s in request.seeds]
        return GenerationResult(
            images=images,
            model="fake",
            mode="img2img" if request.reference_png else "text2img",
            steps=1,
            guidance_scale=1.0,
            strength=0.5 if request.reference_png else None,
            width=8,
            height=8,
            seconds=0.0,
            batch_size=len(images),
        )

    async def score(
        self, scorer: str, prompt: str, images: list[bytes], reference: bytes | None = None
    ) -> ScoreResult:
        self.score_calls.append((scorer, prompt, len(images)))
        if scorer in self.fail_scorers:
            raise ScorerFailed(f"{scorer} failed: injected")
        values = self.scores.get(scorer) or [float(10 * (k + 1)) for k in range(len(images))]
        values = values[: len(images)]
        extra: dict[str, list[float]] = {}
        if reference is not None:
            self.references.append((scorer, reference))
            extra["consistency"] = (self.consistency or [float(90 - 10 * k) for k in range(len(images))])[
                : len(images)
            ]
        return ScoreResult(scorer=scorer, raw=values, normalized=values, extra=extra, seconds=0.0)


class RecordingDirector:
    """The ingress's view of the Director: records submissions, cancels nothing real."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    async def submit(self, generation_id: str) -> None:
        self.submitted.append(generation_id)

    async def cancel(self, generation_id: str) -> bool:
        return True


def slow_ports(delay_s: float) -> FakePorts:
    """``FakePorts`` whose generator takes ``delay_s`` per call (a scene that takes time to render)."""
    ports = FakePorts()
    original = ports.generate

    async def slow(request: GenerationRequest) -> GenerationResult:
        await asyncio.sleep(delay_s)
        return await original(request)

    ports.generate = slow  # type: ignore[method-assign]
    return ports
