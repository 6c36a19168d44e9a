"""The diffusion core: seeded, batched text2img and img2img on one set of pipeline components.

No Ray here. ``DiffusionGenerator`` loads a text2img pipeline from a profile's model spec (a local
dir or a hub id) with diffusers' own loaders, derives the img2img pipeline from it with ``from_pipe``
(the same component objects, no second copy in memory), and runs all N variations of a scene in
ONE pipeline call with one ``torch.Generator`` per seed, so a variation depends only on its seed.

Out of memory: a pipeline call that runs out of memory is split into calls of half as many images
(down to one image per call); since each image has its own generator, the images are the same as
unsplit ones (up to float rounding). Only when a single image does not fit does the request fail,
with ``GeneratorOutOfMemory``. Injection for tests and drills: the option ``oom_above_images: n``
makes every pipeline call of more than n images raise ``torch.OutOfMemoryError``.

Model families: the profile's ``options.family`` (``sd`` by default, ``sdxl``, ``flux``) picks one row of
``PIPELINE_FAMILIES``, the only place that knows how the families' pipelines differ: whether they take
a negative prompt (Flux-schnell has none: a request's negative prompt is not sent and the result
carries a warning instead), which profile options are call arguments (Flux: ``max_sequence_length``),
whether img2img takes the output size, and the size multiple. Other options read here: ``dtype`` (the
weights dtype on CUDA, over the profile's), ``variant`` (e.g. ``fp16`` files, on CUDA), ``random_init``
(the source is a config-only dir: ``weights.random_init.build_random`` builds the pipeline on the
device with random weights; the ``gpu-bench`` profile).

img2img runs ``int(steps * strength)`` denoising steps in diffusers (SDXL-Turbo's card: keep
``steps * strength >= 1``). A request that sets ``steps`` explicitly must satisfy that (else
``InvalidGenerationRequest``); when the steps come from the profile default, they are raised to the
smallest count that runs one step, and the result says so in ``warnings``.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from weights.devices import resolve_device
from weights.forge import resolve_spec
from weights.profiles import GenerationDefaults, ModelSpec

logger = logging.getLogger(__name__)

MAX_SIDE = 2048
# Warnings about the negative prompt start with this (the Director reports them when the user sent one).
NEGATIVE_PROMPT_WARNING = "negative prompt"
MAX_BATCH = 16


class PipelineFamily(BaseModel):
    """How one family of diffusers pipelines is called (data, one row per family)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    negative_prompt: bool = Field(description="The pipeline honours negative_prompt (with CFG on).")
    call_options: tuple[str, ...] = Field(
        default=(), description="Profile option keys passed to every pipeline call when set."
    )
    img2img_takes_size: bool = Field(
        default=False, description="img2img needs width/height (else it sizes from the reference image)."
    )
    size_multiple: int = Field(default=8, description="Width and height must be multiples of this.")


PIPELINE_FAMILIES: dict[str, PipelineFamily] = {
    "sd": PipelineFamily(negative_prompt=True),
    "sdxl": PipelineFamily(negative_prompt=True),
    # FLUX.1-schnell: guidance-distilled, no negative prompt; T5 sequence length is a call option;
    # latents are 2x2-packed, so sides are multiples of 16 (VAE factor 8 x 2).
    "flux": PipelineFamily(
        negative_prompt=False,
        call_options=("max_sequence_length",),
        img2img_takes_size=True,
        size_multiple=16,
    ),
}
DEFAULT_FAMILY = "sd"


class InvalidGenerationRequest(ValueError):
    """A request the pipeline cannot run; the message says which field to fix."""


class GeneratorError(RuntimeError):
    """The model failed while generating (including injected faults)."""


class GeneratorOutOfMemory(GeneratorError):
    """Out of memory even with one image per pipeline call (lower the resolution or the variations)."""


_OOM_MESSAGES = ("out of memory", "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's ``OutOfMemoryError`` (CUDA and others), ``GeneratorOutOfMemory``, and errors
    whose message says so (e.g. re-raised by Ray around the original, or CPU allocator failures)."""
    if any(cls.__name__ in ("OutOfMemoryError", "GeneratorOutOfMemory") for cls in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _OOM_MESSAGES)


class GenerationRequest(BaseModel):
    """One scene's images: N variations of one prompt, one seed each."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="Text prompt for every variation.")
    seeds: list[int] = Field(description="One seed per variation; image k depends only on seeds[k].")
    negative_prompt: str | None = Field(default=None, description="What to steer away from.")
    reference_png: bytes | None = Field(
        default=None,
        description="img2img reference (PNG): the previous scene's kept image, or scene 1's product "
        "reference image; fitted to the output size (centre-cropped to its aspect ratio, then resized).",
    )
    strength: float | None = Field(
        default=None, description="img2img strength; None: the profile's (chain) strength."
    )
    steps: int | None = Field(default=None, description="Denoising steps; profile default if None.")
    guidance_scale: float | None = Field(default=None, description="CFG scale; profile default if None.")
    width: int | None = Field(default=None, description="Width in pixels; profile default if None.")
    height: int | None = Field(default=None, description="Height in pixels; profile default if None.")


class GeneratedImage(BaseModel):
    """One variation."""

    seed: int = Field(description="The seed that produced it.")
    png: bytes = Field(description="The image, PNG-encoded.")


class GenerationResult(BaseModel):
    """The images of one request, in seed order, with what made them."""

    images: list[GeneratedImage] = Field(description="One image per seed, in request order.")
    model: str = Field(description="Model source the images came from.")
    mode: Literal["text2img", "img2img"] = Field(description="img2img when a reference image was given.")
    steps: int = Field(description="Denoising steps used.")
    guidance_scale: float = Field(description="CFG scale used.")
    strength: float | None = Field(description="img2img strength used (None for text2img).")
    width: int = Field(description="Width in pixels.")
    height: int = Field(description="Height in pixels.")
    seconds: float = Field(description="Wall time of the pipeline call(s) this request was part of.")
    batch_size: int = Field(
        description="Images in that pipeline call (several requests may share one); after an "
        "out-of-memory split, in the largest of the calls."
    )
    pipeline_calls: int = Field(
        default=1,
        ge=1,
        description="Pipeline calls that made these images: more than 1 after an out-of-memory split.",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the request asked for but did not get, and settings changed to run it "
        "(e.g. a negative prompt the model family cannot use); empty when none.",
    )


class _ResolvedRequest(BaseModel):
    """A request with every default filled in and the reference decoded."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompt: str
    seeds: list[int]
    negative_prompt: str | None
    reference: Image.Image | None
    strength: float | None
    steps: int
    guidance_scale: float
    width: int
    height: int
    warnings: list[str]

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can run in the same pipeline call."""
        return (
            self.reference is not None,
            self.negative_prompt is None,
            self.strength,
            self.steps,
            self.guidance_scale,
            self.width,
            self.height,
        )


def _img2img_steps(steps: int, strength: float) -> int:
    """The smallest step count >= ``steps`` with int(steps * strength) >= 1 (capped at 150)."""
    while int(steps * strength) < 1 and steps < 150:
        steps += 1
    return steps


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an image (deterministic for equal pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> Image.Image:
    """An RGB image from PNG (or any PIL-readable) bytes; clear error when unreadable."""
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as exc:  # PIL raises several unrelated types for bad data
        raise InvalidGenerationRequest(f"reference_png is not a readable image: {exc}") from exc


def fit_reference(image: Image.Image, width: int, height: int) -> Image.Image:
    """The reference at the output size: centre-cropped to the output's aspect ratio first, so a product
    photo of another shape is not squashed (a chain reference has the output's size already)."""
    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)


class DiffusionGenerator:
    """Seeded, batched text2img/img2img over one loaded diffusers pipeline."""

    def __init__(
        self,
        spec: ModelSpec,
        defaults: GenerationDefaults,
        *,
        device: str = "auto",
        dtype: str = "float32",
        model_dir: Path | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        import torch  # noqa: PLC0415
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image  # noqa: PLC0415

        resolved = resolve_spec(spec, model_dir)
        self.options = {**resolved.options, **(options or {})}
        self.source = spec.source
        self.defaults = defaults
        family_name = str(self.options.get("family", DEFAULT_FAMILY))
        if family_name not in PIPELINE_FAMILIES:
            raise ValueError(
                f"options.family {family_name!r} is not a pipeline family; choose one of {sorted(PIPELINE_FAMILIES)}"
            )
        self.family_name = family_name
        self.family = PIPELINE_FAMILIES[family_name]
        self.device = resolve_device(device)
        if self.device == "cpu":
            # oneDNN's first-call kernel selection costs ~15 s on CPU for small UNets; plain kernels win.
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        dtype = str(self.options.get("dtype", dtype))  # a model's own dtype (Flux: bfloat16) wins
        torch_dtype = getattr(torch, dtype) if self.device == "cuda" else torch.float32
        load_kwargs: dict[str, Any] = {"dtype": torch_dtype}
        if self.options.get("variant") and self.device == "cuda":
            load_kwargs["variant"] = self.options["variant"]
        started = time.perf_counter()
        if self.options.get("random_init"):
            # a config-only dir (gpu-bench): built from its configs on the device, random weights
            from weights.random_init import build_random  # noqa: PLC0415

            self.text2img = build_random(resolved.source, self.device, torch_dtype)
        else:
            self.text2img = AutoPipelineForText2Image.from_pretrained(resolved.source, **load_kwargs)
            self.text2img.to(self.device)
        self.text2img.set_progress_bar_config(disable=True)
        # from_pipe reuses the very same component objects: one copy of the weights for both modes.
        self.img2img = AutoPipelineForImage2Image.from_pipe(self.text2img)
        self.img2img.set_progress_bar_config(disable=True)
        self.load_seconds = time.perf_counter() - started
        logger.info("loaded %s on %s in %.1fs", self.source, self.device, self.load_seconds)

    # 0. validation -----------------------------------------------------------------------------
    def check_inputs(self, request: GenerationRequest) -> _ResolvedRequest:
        """Fill defaults and validate; raises InvalidGenerationRequest naming the bad field."""
        defaults = self.defaults
        prompt = request.prompt.strip()
        if not prompt:
            raise InvalidGenerationRequest("prompt must not be empty")
        if not request.seeds:
            raise InvalidGenerationRequest("seeds must hold at least one seed")
        if len(request.seeds) > MAX_BATCH:
            raise InvalidGenerationRequest(
                f"seeds holds {len(request.seeds)}; at most {MAX_BATCH} per request"
            )
        for seed in request.seeds:
            if not 0 <= seed < 2**63:
                raise InvalidGenerationRequest(f"seed {seed} is out of range [0, 2**63)")
        steps = request.steps if request.steps is not None else defaults.steps
        if not 1 <= steps <= 150:
            raise InvalidGenerationRequest(f"steps must be in [1, 150], got {steps}")
        width = request.width if request.width is not None else defaults.width
        height = request.height if request.height is not None else defaults.height
        multiple = self.family.size_multiple
        for name, side in (("width", width), ("height", height)):
            if side % multiple or not multiple <= side <= MAX_SIDE:
                raise InvalidGenerationRequest(
                    f"{name} must be a multiple of {multiple} in [{multiple}, {MAX_SIDE}], got {side}"
                )
        guidance = request.guidance_scale if request.guidance_scale is not None else defaults.guidance_scale
        if not 0 <= guidance <= 50:
            raise InvalidGenerationRequest(f"guidance_scale must be in [0, 50], got {guidance}")
        warnings: list[str] = []
        reference = decode_png(request.reference_png) if request.reference_png is not None else None
        strength: float | None = None
        if reference is not None:
            strength = request.strength if request.strength is not None else defaults.strength
            if not 0 < strength <= 1:
                raise InvalidGenerationRequest(f"strength must be in (0, 1], got {strength}")
            if request.steps is None and int(steps * strength) < 1:
                steps = _img2img_steps(steps, strength)
                warnings.append(
                    f"steps raised from {defaults.steps} to {steps}: img2img runs int(steps * strength) "
                    f"denoising steps, at least 1 (strength={strength})"
                )
            if int(steps * strength) < 1:
                raise InvalidGenerationRequest(
                    f"steps * strength must be at least 1 for img2img (steps={steps}, strength={strength})"
                )
            reference = fit_reference(reference, width, height)
        negative_prompt = request.negative_prompt
        if negative_prompt is not None and not self.family.negative_prompt:
            warnings.append(
                f"{NEGATIVE_PROMPT_WARNING} not used: {self.source} ({self.family_name} family) has no negative "
                f"prompt; describe what to avoid in the prompt instead"
            )
            negative_prompt = None
        elif negative_prompt is not None and guidance <= 1:
            # diffusers only runs the negative branch with classifier-free guidance (scale > 1)
            warnings.append(
                f"{NEGATIVE_PROMPT_WARNING} has no effect: guidance_scale {guidance} <= 1 turns classifier-free "
                f"guidance off"
            )
        return _ResolvedRequest(
            prompt=prompt,
            seeds=list(request.seeds),
            negative_prompt=negative_prompt,
            reference=reference,
            strength=strength,
            steps=steps,
            guidance_scale=guidance,
            width=width,
            height=height,
            warnings=warnings,
        )

    # 1. public API -----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """All variations of one request in one batched pipeline call."""
        return self.generate_many([request])[0]

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Several requests; compatible ones (same mode and settings) share one pipeline call.

        Each image still depends only on its own prompt, reference and seed, so merging requests
        never changes what a request gets back.
        """
        if self.options.get("fail"):
            raise GeneratorError(f"injected generator fault: {self.options['fail']}")
        resolved = [self.check_inputs(request) for request in requests]
        results: list[GenerationResult | None] = [None] * len(resolved)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for position, item in enumerate(resolved):
            groups.setdefault(item.batch_key(), []).append(position)
        for positions in groups.values():
            for position, result in zip(
                positions, self._run_group([resolved[p] for p in positions]), strict=True
            ):
                results[position] = result
        return [result for result in results if result is not None]

    def check_health(self) -> None:
        """Raise if the pipeline cannot produce an image (one 1-step tiny-size call)."""
        probe = GenerationRequest(prompt="health check", seeds=[0], steps=1, width=64, height=64)
        result = self.generate(probe)
        if not result.images:
            raise GeneratorError("health check produced no image")

    # 2. one pipeline call for a group of compatible requests ------------------------------------
    def _run_group(self, group: list[_ResolvedRequest]) -> list[GenerationResult]:
        first = group[0]
        # 2a. flatten: one prompt, seed, negative prompt and reference per image
        images_wanted = [(item, seed) for item in group for seed in item.seeds]
        # 2b. run the right pipeline, in smaller calls if one call runs out of memory
        started = time.perf_counter()
        pil_images, call_sizes = self._generate_split(first, images_wanted)
        seconds = time.perf_counter() - started
        # 2c. split the images back per request
        images = iter(pil_images)
        results = []
        for item in group:
            generated = [GeneratedImage(seed=seed, png=encode_png(next(images))) for seed in item.seeds]
            results.append(
                GenerationResult(
                    images=generated,
                    model=self.source,
                    mode="img2img" if item.reference is not None else "text2img",
                    steps=item.steps,
                    guidance_scale=item.guidance_scale,
                    strength=item.strength,
                    width=item.width,
                    height=item.height,
                    seconds=round(seconds, 4),
                    batch_size=max(call_sizes),
                    pipeline_calls=len(call_sizes),
                    warnings=list(item.warnings),
                )
            )
        return results

    def _generate_split(
        self, first: _ResolvedRequest, wanted: list[tuple[_ResolvedRequest, int]]
    ) -> tuple[list[Image.Image], list[int]]:
        """All ``wanted`` images, in order, and the size of each pipeline call that made them.

        One call for all; on out-of-memory, the rest is made in calls of half the size (the size
        that worked is kept for the following calls), down to one image per call.
        """
        images: list[Image.Image] = []
        call_sizes: list[int] = []
        chunk = len(wanted)
        while len(images) < len(wanted):
            part = wanted[len(images) : len(images) + chunk]
            try:
                images.extend(self._pipeline_call(first, part))
                call_sizes.append(len(part))
                continue
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if len(part) == 1:
                    raise GeneratorOutOfMemory(
                        f"out of memory even with one {first.width}x{first.height} image per pipeline call "
                        f"({first.steps} steps): {exc}"
                    ) from exc
                chunk = (len(part) + 1) // 2
                logger.warning(
                    "out of memory with %d images in one pipeline call; retrying in calls of %d",
                    len(part),
                    chunk,
                )
            self._release_memory()  # outside the except block: the failed call's tensors are freed
        return images, call_sizes

    def _pipeline_call(
        self, first: _ResolvedRequest, wanted: list[tuple[_ResolvedRequest, int]]
    ) -> list[Image.Image]:
        """One pipeline call: image k from (request k's prompt, reference) and its own seeded generator."""
        import torch  # noqa: PLC0415

        limit = self.options.get("oom_above_images")
        if limit is not None and len(wanted) > int(limit):
            raise torch.OutOfMemoryError(
                f"CUDA out of memory (injected: {len(wanted)} images in one call, at most {int(limit)} fit)"
            )
        call_kwargs: dict[str, Any] = {
            "prompt": [item.prompt for item, _ in wanted],
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance_scale,
            "generator": [torch.Generator(self.device).manual_seed(seed) for _, seed in wanted],
            "output_type": "pil",
        }
        if first.negative_prompt is not None:  # check_inputs cleared it where the family has none
            call_kwargs["negative_prompt"] = [item.negative_prompt for item, _ in wanted]
        for key in self.family.call_options:
            if key in self.options:
                call_kwargs[key] = self.options[key]
        with torch.inference_mode():
            if first.reference is not None:
                call_kwargs["image"] = [item.reference for item, _ in wanted]
                call_kwargs["strength"] = first.strength
                if self.family.img2img_takes_size:  # else Flux img2img resizes to its 1024 default
                    call_kwargs.update(width=first.width, height=first.height)
                output = self.img2img(**call_kwargs)
            else:
                output = self.text2img(width=first.width, height=first.height, **call_kwargs)
        return list(output.images)

    def _release_memory(self) -> None:
        """Hand cached GPU memory back after an out-of-memory error (nothing to do on CPU)."""
        if self.device.startswith("cuda"):
            import torch  # noqa: PLC0415

            torch.cuda.empty_cache()
