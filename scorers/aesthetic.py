"""Aesthetic score: the LAION "improved aesthetic predictor" (C. Schuhmann).

An MLP on L2-normalised CLIP ViT-L/14 image embeddings predicting a 1–10 rating. ``AestheticMLP``
is the published architecture with the published state-dict keys (``layers.0``, ``layers.2``,
``layers.4``, ``layers.6``, ``layers.7``), so ``sac+logos+ava1-l14-linearMSE.pth`` loads strictly.
``raw`` is the predicted rating; ``normalized`` = 100 · (rating − 1) / 9, clipped to 0–100.

Loading (``ModelSpec``):
- ``source``: the MLP checkpoint — a ``.pth`` file, a dir holding exactly one ``.pth``, or a hub file
  as ``org/repo/filename.pth`` (fetched with ``huggingface_hub.hf_hub_download``);
- ``options.clip`` (+ ``options.clip_pretrained``): the CLIP image tower, as for CLIPScore (an
  open_clip local dir, or a model name + pretrained tag such as ``ViT-L-14`` / ``openai``). It is
  shared with CLIPScore when both name the same CLIP (options: ``AestheticOptions`` in
  ``scorers.catalogue``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from scorers.base import BatchScorer, ScorerError, resolve_device, resolve_dtype, shared_model
from scorers.catalogue import AestheticOptions
from scorers.clipscore import OpenClipBundle, encode_images, load_open_clip, open_clip_model_name
from weights.architectures import AestheticMLP

if TYPE_CHECKING:
    from PIL import Image

RATING_MIN, RATING_MAX = 1.0, 10.0


def rating_to_percent(rating: float) -> float:
    """1–10 rating → 0–100, clipped."""
    return min(max(100.0 * (rating - RATING_MIN) / (RATING_MAX - RATING_MIN), 0.0), 100.0)


def resolve_checkpoint(source: str) -> Path:
    """The local ``.pth`` for a file, a dir with one ``.pth``, or a hub ``org/repo/filename``."""
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        candidates = sorted(path.glob("*.pth"))
        if len(candidates) != 1:
            raise ScorerError(f"expected exactly one .pth in {path}, found {[c.name for c in candidates]}")
        return candidates[0]
    parts = source.split("/")
    if len(parts) < 3:
        raise ScorerError(f"aesthetic source {source!r} is neither a local path nor 'org/repo/file.pth'")
    from huggingface_hub import hf_hub_download  # noqa: PLC0415

    return Path(hf_hub_download(repo_id="/".join(parts[:2]), filename="/".join(parts[2:])))


def load_aesthetic_mlp(source: str, device: str) -> Any:
    """Load (once per process) the MLP checkpoint strictly into the published architecture."""
    device = resolve_device(device)

    def _load() -> Any:
        checkpoint = resolve_checkpoint(source)
        state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if "layers.0.weight" not in state_dict:
            raise ScorerError(f"{checkpoint} is not an aesthetic-predictor state dict (no layers.0.weight)")
        mlp = AestheticMLP(int(state_dict["layers.0.weight"].shape[1]))
        mlp.load_state_dict(state_dict, strict=True)
        return mlp.to(device).eval()

    return shared_model(("aesthetic_mlp", source, device), _load)


class AestheticScorer(BatchScorer):
    """LAION aesthetic predictor over a CLIP image tower; the prompt is not used."""

    name = "aesthetic"

    def __init__(self, clip: OpenClipBundle, mlp: Any) -> None:
        if mlp.input_size != clip.embed_dim:
            raise ScorerError(
                f"aesthetic MLP expects {mlp.input_size}-dim embeddings but the CLIP gives {clip.embed_dim}"
            )
        self.clip = clip
        self.mlp = mlp

    @classmethod
    def from_spec(cls, source: str, options: AestheticOptions, *, device: str, dtype: str) -> AestheticScorer:
        clip_name = open_clip_model_name(options.clip, options.clip_arch)
        clip = load_open_clip(clip_name, options.clip_pretrained, device, dtype)
        resolve_dtype(dtype, resolve_device(device))  # validates the dtype name
        return cls(clip, load_aesthetic_mlp(source, device))

    def _score_batch(
        self, prompt: str, images: list[Image.Image]
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        # 1. L2-normalised CLIP image embeddings (the predictor was trained on normalised ones)
        embeds = encode_images(self.clip, images)
        # 2. the MLP rating, 1–10, then 0–100
        ratings = self.mlp(embeds.to(next(self.mlp.parameters()).device)).squeeze(-1).tolist()
        return ratings, [rating_to_percent(r) for r in ratings], {}
