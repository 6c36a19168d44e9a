"""CLIPScore (Hessel et al. 2021): reference-free image–text compatibility from an open_clip model.

CLIP-S(c, v) = w · max(cos(E_text(c), E_image(v)), 0), w = 2.5. ``raw`` is CLIP-S (0–2.5);
``normalized`` is 100 · CLIP-S clipped at 100. ``extra["cosine"]`` keeps the plain cosines.

Loading (``ModelSpec``):
- ``options.arch == "local-dir"`` (or a source that is a directory): ``source`` is an open_clip
  local-dir (``open_clip_config.json`` + weights), loaded as ``"local-dir:" + source``;
- otherwise ``options.arch`` (default: ``source``) is an open_clip model name and
  ``options.pretrained`` its tag, e.g. ``ViT-L-14-quickgelu`` / ``openai`` in production, a checkpoint
  file, or a checkpoint dir with its ``open_clip_config.json`` (a forged twin: the named architecture
  at toy width, see ``open_clip_pretrained``).
With a ``reference`` image (the previous kept scene), ``extra["consistency"]`` holds each image's
similarity to it, 0–100 (CLIP image–image cosine, ``scorers.aggregate.consistency_from_cosines``),
from the same image-tower pass. Option ``text_prefix`` (default ``""``) is prepended to the prompt; Hessel et al. used
``"A photo depicts "``. Options: ``ClipScoreOptions`` in ``scorers.catalogue``.
"""

from __future__ import annotations

import json
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


# What a checkpoint dir may not change about a named architecture: its interface (open_clip config keys).
_INTERFACE_KEYS = (
    ("embed_dim",),
    ("quick_gelu",),
    ("vision_cfg", "image_size"),
    ("vision_cfg", "patch_size"),
    ("text_cfg", "context_length"),
    ("text_cfg", "vocab_size"),
)


def open_clip_pretrained(model_name: str, pretrained: str | None) -> tuple[str | None, dict[str, Any]]:
    """``pretrained`` as open_clip takes it, plus the model-config overrides a checkpoint dir carries.

    A tag (``openai``) or a checkpoint file passes through. A directory holding ``open_clip_config.json``
    and one checkpoint (a forged twin of ``model_name``, or a downloaded open_clip repo) gives that file
    and the dir's ``model_cfg``, which may narrow or shorten the named architecture but must keep its
    interface (embedding width, image and patch size, QuickGELU, context length, vocabulary).
    """
    if pretrained is None or not Path(pretrained).is_dir():
        return pretrained, {}
    import open_clip  # noqa: PLC0415

    directory = Path(pretrained)
    config_path = directory / "open_clip_config.json"
    checkpoints = sorted(
        path for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth") for path in directory.glob(pattern)
    )
    if not config_path.is_file() or len(checkpoints) != 1:
        raise ScorerError(
            f"open_clip pretrained dir {directory} needs open_clip_config.json and exactly one checkpoint, "
            f"found {sorted(p.name for p in directory.iterdir())}"
        )
    model_cfg = json.loads(config_path.read_text())["model_cfg"]
    named = open_clip.get_model_config(model_name) or {}
    changed = [
        ".".join(keys)
        for keys in _INTERFACE_KEYS
        if _lookup(named, keys) is not None and _lookup(model_cfg, keys) != _lookup(named, keys)
    ]
    if changed:
        raise ScorerError(f"{directory} is not a {model_name} checkpoint: it changes {changed}")
    return str(checkpoints[0]), model_cfg


def _lookup(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = config
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def load_open_clip(model_name: str, pretrained: str | None, device: str, dtype: str) -> OpenClipBundle:
    """Load (once per process) an open_clip model, its eval transform and tokenizer.

    ``pretrained``: a tag, a checkpoint file, or a checkpoint dir (``open_clip_pretrained``).
    """
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)

    def _load() -> OpenClipBundle:
        import open_clip  # noqa: PLC0415

        try:
            checkpoint, model_cfg = open_clip_pretrained(model_name, pretrained)
            # model_cfg: open_clip's own highest-priority override of the named config
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=checkpoint, **model_cfg
            )
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
    takes_reference = True

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

    def _score_batch_with_reference(
        self, prompt: str, images: list[Image.Image], reference: Image.Image
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        from scorers.aggregate import consistency_from_cosines  # noqa: PLC0415

        # 1. one image-tower pass for the images and the reference
        text_embed = encode_texts(self.bundle, [self.text_prefix + prompt])
        embeds = encode_images(self.bundle, [*images, reference])
        image_embeds, reference_embed = embeds[:-1], embeds[-1:]
        # 2. CLIP-S against the prompt, cosine against the reference
        cosines, clip_s, normalized = clip_score_from_embeddings(image_embeds, text_embed, self.w)
        similarity = (image_embeds @ reference_embed.T).squeeze(1).tolist()
        extra = {
            "cosine": cosines,
            "reference_cosine": similarity,
            "consistency": consistency_from_cosines(similarity),
        }
        return clip_s, normalized, extra
