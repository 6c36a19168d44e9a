"""CLIPScore (Hessel et al. 2021): reference-free image–text compatibility from an open_clip model.

CLIP-S(c, v) = w · max(cos(E_text(c), E_image(v)), 0), w = 2.5. ``raw`` is CLIP-S (0–2.5);
``normalized`` is 100 · CLIP-S clipped at 100. ``extra["cosine"]`` keeps the plain cosines.

Loading (``ModelSpec``):
- ``options.arch == "local-dir"`` (or a source that is a directory): ``source`` is an open_clip
  local-dir (``open_clip_config.json`` + weights), loaded as ``"local-dir:" + source``;
- otherwise ``options.arch`` (default: ``source``) is an open_clip model name and
  ``options.pretrained`` its tag, e.g. ``ViT-L-14`` / ``openai`` in production.
Option ``text_prefix`` (default ``""``) is prepended to the prompt; Hessel et al. used
``"A photo depicts "``. Options: ``ClipScoreOptions`` in ``scorers.catalogue``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorers.base import BatchScorer, ScorerError, resolve_device, resolve_dtype, shared_model
from scorers.catalogue import ClipScoreOptions

if TYPE_CHECKING:
    import torch
    from PIL import Image

CLIPSCORE_W = ClipScoreOptions().w


@dataclass(frozen=True)
class OpenClipBundle:
    """A loaded open_clip model with its eval preprocessing and tokenizer."""

    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    dtype: Any
    embed_dim: int


def open_clip_model_name(source: str, arch: str | None = None) -> str:
    """The open_clip model identifier for a source: local dirs get the ``local-dir:`` schema."""
    if arch == "local-dir" or (arch is None and Path(source).is_dir()):
        return "local-dir:" + source
    return arch or source


def load_open_clip(model_name: str, pretrained: str | None, device: str, dtype: str) -> OpenClipBundle:
    """Load (once per process) an open_clip model, its eval transform and tokenizer."""
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)

    def _load() -> OpenClipBundle:
        import open_clip  # noqa: PLC0415

        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
            tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:
            raise ScorerError(f"cannot load open_clip model {model_name!r} ({pretrained}): {exc}") from exc
        model = model.to(device=device, dtype=torch_dtype).eval()
        embed_dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else -1
        return OpenClipBundle(model, preprocess, tokenizer, device, torch_dtype, embed_dim)

    return shared_model(("open_clip", model_name, pretrained, device, str(torch_dtype)), _load)


def encode_images(bundle: OpenClipBundle, images: list[Image.Image]) -> torch.Tensor:
    """L2-normalised image embeddings, one batched forward pass."""
    import torch  # noqa: PLC0415

    pixels = torch.stack([bundle.preprocess(image) for image in images])
    pixels = pixels.to(device=bundle.device, dtype=bundle.dtype)
    return bundle.model.encode_image(pixels, normalize=True).float()


def encode_texts(bundle: OpenClipBundle, texts: list[str]) -> torch.Tensor:
    """L2-normalised text embeddings."""
    tokens = bundle.tokenizer(texts).to(bundle.device)
    return bundle.model.encode_text(tokens, normalize=True).float()


def clip_score_from_embeddings(
    image_embeds: torch.Tensor, text_embed: torch.Tensor, w: float = CLIPSCORE_W
) -> tuple[list[float], list[float], list[float]]:
    """(cosines, CLIP-S, 0–100) for image embeddings [N, D] against one text embedding [D] or [1, D].

    Embeddings need not be normalised: the cosine is computed here.
    """
    import torch  # noqa: PLC0415

    image_embeds = torch.nn.functional.normalize(image_embeds.float(), dim=-1)
    text_embed = torch.nn.functional.normalize(text_embed.float().reshape(1, -1), dim=-1)
    cosines = (image_embeds @ text_embed.T).squeeze(1)
    clip_s = w * cosines.clamp(min=0.0)
    normalized = (100.0 * clip_s).clamp(max=100.0)
    return cosines.tolist(), clip_s.tolist(), normalized.tolist()


class ClipScoreScorer(BatchScorer):
    """CLIPScore with an open_clip model; one forward pass for all images of a prompt."""

    name = "clipscore"

    def __init__(self, bundle: OpenClipBundle, *, w: float = CLIPSCORE_W, text_prefix: str = "") -> None:
        self.bundle = bundle
        self.w = w
        self.text_prefix = text_prefix

    @classmethod
    def from_spec(cls, source: str, options: ClipScoreOptions, *, device: str, dtype: str) -> ClipScoreScorer:
        bundle = load_open_clip(open_clip_model_name(source, options.arch), options.pretrained, device, dtype)
        return cls(bundle, w=options.w, text_prefix=options.text_prefix)

    def _score_batch(
        self, prompt: str, images: list[Image.Image]
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        # 1. encode the prompt once and all images in one batch
        text_embed = encode_texts(self.bundle, [self.text_prefix + prompt])
        image_embeds = encode_images(self.bundle, images)
        # 2. CLIP-S and its 0–100 form
        cosines, clip_s, normalized = clip_score_from_embeddings(image_embeds, text_embed, self.w)
        return clip_s, normalized, {"cosine": cosines}
