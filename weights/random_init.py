"""Build a model from its config dir directly on the target device, with random weights.

``build_random(model_dir, device, dtype)`` is the one loader of the ``gpu-bench`` profile's
config-only dirs (``weights.forge_bench_full``); it reads configs only, so it builds the twins' dirs
too (their weight files are ignored), which is how CPU tests run the same code path at toy size.

Parameters are created on ``device`` in ``dtype`` (``with torch.device(device)`` + the default
dtype), so a 12B model never exists on the CPU: nothing is allocated there first, nothing is copied.

What a dir is, by the file it holds:
- ``model_index.json``: a diffusers pipeline. diffusers models via ``Model.from_config``,
  transformers models via ``Model._from_config``, tokenizers and schedulers via ``from_pretrained``
  (they are files, not weights), then ``Pipeline(**components)``;
- ``open_clip_config.json``: ``open_clip.CLIP(**model_cfg)`` (see ``open_clip_transforms``);
- ``aesthetic_config.json``: the LAION aesthetic MLP;
- ``config.json``: the transformers class its ``architectures`` names, via ``_from_config``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OPENCLIP_CONFIG = "open_clip_config.json"
AESTHETIC_CONFIG = "aesthetic_config.json"


class RandomInitError(ValueError):
    """The dir holds no config that ``build_random`` knows how to build."""


def torch_dtype(dtype: Any) -> Any:
    """A torch dtype from a name ('bfloat16') or a dtype."""
    import torch  # noqa: PLC0415

    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise RandomInitError(f"unknown dtype {dtype!r}")
    return value


@contextlib.contextmanager
def on_device(device: str, dtype: Any) -> Iterator[None]:
    """Modules built inside get their parameters on ``device`` in ``dtype`` (restored on exit)."""
    import torch  # noqa: PLC0415

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(dtype))
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def kind_of(model_dir: str | Path) -> str:
    """'diffusers-pipeline', 'open_clip', 'aesthetic' or 'transformers' (RandomInitError otherwise)."""
    path = Path(model_dir)
    for name, kind in (
        ("model_index.json", "diffusers-pipeline"),
        (OPENCLIP_CONFIG, "open_clip"),
        (AESTHETIC_CONFIG, "aesthetic"),
        ("config.json", "transformers"),
    ):
        if (path / name).is_file():
            return kind
    raise RandomInitError(
        f"{path} holds no model_index.json, {OPENCLIP_CONFIG}, {AESTHETIC_CONFIG} or config.json"
    )


def build_random(
    model_dir: str | Path, device: str = "cpu", dtype: Any = "float32", *, seed: int | None = None
) -> Any:
    """The model (or diffusers pipeline) that ``model_dir``'s config describes, random, on ``device``.

    ``seed`` seeds torch first (every device), so equal seeds build equal weights on one machine.
    Returns the module in eval mode (a pipeline's modules too).
    """
    import torch  # noqa: PLC0415

    if seed is not None:
        torch.manual_seed(seed)
    path = Path(model_dir)
    kind = kind_of(path)
    if kind == "diffusers-pipeline":
        return _build_pipeline(path, device, dtype)
    if kind == "open_clip":
        return _build_open_clip(path, device, dtype)
    if kind == "aesthetic":
        from weights.architectures import AestheticMLP  # noqa: PLC0415

        input_size = int(json.loads((path / AESTHETIC_CONFIG).read_text())["input_size"])
        with on_device(device, dtype):
            return AestheticMLP(input_size).eval()
    return _build_transformers(path, device, dtype)


def _build_transformers(path: Path, device: str, dtype: Any) -> Any:
    import transformers  # noqa: PLC0415
    from transformers import AutoConfig  # noqa: PLC0415

    config = AutoConfig.from_pretrained(str(path))
    architectures = getattr(config, "architectures", None) or []
    if not architectures or not hasattr(transformers, architectures[0]):
        raise RandomInitError(f"{path}/config.json names no transformers model class ({architectures})")
    model_class = getattr(transformers, architectures[0])
    with on_device(device, dtype):
        model = model_class._from_config(config, dtype=torch_dtype(dtype))
    return model.eval()


def _build_open_clip(path: Path, device: str, dtype: Any) -> Any:
    import open_clip  # noqa: PLC0415

    model_cfg = json.loads((path / OPENCLIP_CONFIG).read_text())["model_cfg"]
    with on_device(device, dtype):
        model = open_clip.CLIP(**model_cfg)
    return model.eval()


def open_clip_transforms(model_dir: str | Path) -> tuple[Any, Any, int]:
    """(eval image transform, tokenizer, embedding width) of an ``open_clip_config.json`` dir."""
    import open_clip  # noqa: PLC0415

    data = json.loads((Path(model_dir) / OPENCLIP_CONFIG).read_text())
    model_cfg, preprocess_cfg = data["model_cfg"], data.get("preprocess_cfg", {})
    transform = open_clip.image_transform(
        model_cfg["vision_cfg"]["image_size"],
        is_train=False,
        mean=tuple(preprocess_cfg["mean"]) if "mean" in preprocess_cfg else None,
        std=tuple(preprocess_cfg["std"]) if "std" in preprocess_cfg else None,
        resize_mode=preprocess_cfg.get("resize_mode"),
        interpolation=preprocess_cfg.get("interpolation"),
    )
    tokenizer = open_clip.get_tokenizer(data.get("architecture", "ViT-L-14-quickgelu"))
    return transform, tokenizer, int(model_cfg["embed_dim"])


def _build_pipeline(path: Path, device: str, dtype: Any) -> Any:
    import diffusers  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    index = json.loads((path / "model_index.json").read_text())
    components: dict[str, Any] = {}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list):
            continue
        library, class_name = entry
        if library is None or class_name is None:
            components[name] = None
            continue
        module = {"diffusers": diffusers, "transformers": transformers}.get(library)
        if module is None or not hasattr(module, class_name):
            raise RandomInitError(
                f"{path}: component {name} is {library}.{class_name}, which is not importable"
            )
        component_class = getattr(module, class_name)
        subdir = path / name
        if library == "diffusers" and issubclass(component_class, diffusers.ModelMixin):
            with on_device(device, dtype):
                components[name] = component_class.from_config(
                    component_class.load_config(str(subdir))
                ).eval()
        elif library == "transformers" and issubclass(component_class, transformers.PreTrainedModel):
            components[name] = _build_transformers(subdir, device, dtype)
        else:  # tokenizers, schedulers, processors: small files, loaded as they are
            components[name] = component_class.from_pretrained(str(subdir))
    pipeline_class = getattr(diffusers, index["_class_name"])
    return pipeline_class(**components)
