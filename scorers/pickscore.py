"""PickScore (Kirstain et al. 2023): a CLIP-architecture model fine-tuned on human preferences.

As in the reference implementation: raw = logit_scale.exp() · cos(E_text(prompt), E_image(image)),
and the per-prompt preference over variations is softmax(raw) (``extra["softmax"]``).

PickScore has no natural 0–100 scale, so ``normalized`` is a documented linear calibration:
``100 · (raw − low) / (high − low)``, clipped to 0–100. Defaults ``low = 18``, ``high = 24`` are for
PickScore_v1 (logit scale 100): reported mean PickScores of SD-1.5-class and SDXL-class images (about
21–22.5) land mid-range. They are options (``calibration_low`` / ``calibration_high``); a forged or
different model should set its own.

Loading (``ModelSpec``): ``source`` is a transformers ``CLIPModel`` (``yuvalkirstain/PickScore_v1`` in
production), ``options.processor`` the ``CLIPProcessor`` (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``);
both go through ``from_pretrained`` (option ``subfolder`` applies to both). Options: ``PickScoreOptions``
in ``scorers.catalogue``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorers.base import BatchScorer, ScorerError, resolve_device, resolve_dtype, shared_model
from scorers.catalogue import PickScoreOptions

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_CALIBRATION = (PickScoreOptions().calibration_low, PickScoreOptions().calibration_high)


@dataclass(frozen=True)
class HFClipBundle:
    """A loaded transformers CLIPModel and its processor."""

    model: Any
    processor: Any
    device: str
    dtype: Any


def load_hf_clip(
    source: str, processor_source: str, device: str, dtype: str, subfolder: str = ""
) -> HFClipBundle:
    """Load (once per process) a transformers CLIPModel and CLIPProcessor (both from ``subfolder``)."""
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)

    def _load() -> HFClipBundle:
        from transformers import AutoProcessor, CLIPModel  # noqa: PLC0415

        try:
            processor = AutoProcessor.from_pretrained(processor_source, subfolder=subfolder)
            model = CLIPModel.from_pretrained(source, dtype=torch_dtype, subfolder=subfolder)
        except Exception as exc:
            raise ScorerError(
                f"cannot load PickScore model {source!r} / {processor_source!r}: {exc}"
            ) from exc
        model = model.to(device)  # type: ignore[arg-type]  # transformers types .to() oddly
        return HFClipBundle(model.eval(), processor, device, torch_dtype)

    return shared_model(("hf_clip", source, processor_source, subfolder, device, str(torch_dtype)), _load)


def _pooled(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is projected; 4.x returned the tensor.
    return output.pooler_output if hasattr(output, "pooler_output") else output


def calibrate(raw: list[float], low: float, high: float) -> list[float]:
    """Linear map of raw PickScores to 0–100, clipped."""
    if high <= low:
        raise ScorerError(f"PickScore calibration needs high > low, got low={low}, high={high}")
    return [min(max(100.0 * (value - low) / (high - low), 0.0), 100.0) for value in raw]


class PickScoreScorer(BatchScorer):
    """PickScore: preference logits of every image against one prompt, in one forward pass."""

    name = "pickscore"

    def __init__(
        self, bundle: HFClipBundle, *, calibration: tuple[float, float] = DEFAULT_CALIBRATION
    ) -> None:
        calibrate([], *calibration)  # validate early
        self.bundle = bundle
        self.calibration = calibration

    @classmethod
    def from_spec(cls, source: str, options: PickScoreOptions, *, device: str, dtype: str) -> PickScoreScorer:
        processor = options.processor or source
        bundle = load_hf_clip(source, processor, device, dtype, subfolder=options.subfolder)
        return cls(bundle, calibration=(options.calibration_low, options.calibration_high))

    def _score_batch(
        self, prompt: str, images: list[Image.Image]
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        import torch  # noqa: PLC0415

        model, processor, device = self.bundle.model, self.bundle.processor, self.bundle.device
        # 1. preprocess: all images in one batch, the prompt once (truncated like the reference code)
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        max_length = min(77, processor.tokenizer.model_max_length)  # 77: CLIP's context length
        text = processor(
            text=[prompt], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        # 2. embed and L2-normalise
        image_embeds = _pooled(model.get_image_features(pixel_values=pixels.to(device, self.bundle.dtype)))
        text_embeds = _pooled(
            model.get_text_features(
                input_ids=text["input_ids"].to(device), attention_mask=text["attention_mask"].to(device)
            )
        )
        image_embeds = torch.nn.functional.normalize(image_embeds.float(), dim=-1)
        text_embeds = torch.nn.functional.normalize(text_embeds.float(), dim=-1)
        # 3. preference logits and the per-prompt softmax over variations
        scores = model.logit_scale.exp().float() * (text_embeds @ image_embeds.T)[0]
        raw = scores.tolist()
        softmax = torch.softmax(scores, dim=0).tolist()
        return raw, calibrate(raw, *self.calibration), {"softmax": softmax}
