"""The model catalogue: named profiles, as data.

A profile names, per role, where the model comes from:
- a hub id or a local path (production), loaded with the library's own loader;
- ``forge:NAME`` — a tiny model that ``weights.forge`` builds offline, in the same on-disk format,
  into the model dir (tests, CPU dev).

Roles: ``diffusion`` (text2img + img2img), ``pickscore``, ``clipscore``, ``vqa``, ``aesthetic``,
``llm``. Each role's ``options`` are read by that role's core only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORGE_PREFIX = "forge:"
Role = Literal["diffusion", "pickscore", "clipscore", "vqa", "aesthetic", "llm"]
ROLES: tuple[Role, ...] = ("diffusion", "pickscore", "clipscore", "vqa", "aesthetic", "llm")


class ModelSpec(BaseModel):
    """Where one role's model comes from and how its core should load it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="Hub id, local path, or 'forge:NAME' for a model forged offline.")
    options: dict[str, Any] = Field(default_factory=dict, description="Role-specific loader options.")

    @property
    def forged_name(self) -> str | None:
        """The forge recipe name when this model is forged, else None."""
        return self.source[len(FORGE_PREFIX) :] if self.source.startswith(FORGE_PREFIX) else None


class GenerationDefaults(BaseModel):
    """Diffusion settings a profile is meant to run with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(description="Denoising steps per image.", ge=1, le=150)
    guidance_scale: float = Field(description="Classifier-free guidance; 0 disables it (turbo models).")
    width: int = Field(description="Image width in pixels (multiple of 8).", ge=8)
    height: int = Field(description="Image height in pixels (multiple of 8).", ge=8)
    strength: float = Field(description="img2img strength when chaining from the previous scene.", gt=0, le=1)


class Profile(BaseModel):
    """A complete set of models for one deployment target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Profile name.")
    description: str = Field(description="What this profile is for.")
    device: Literal["auto", "cpu", "cuda"] = Field(description="'auto' picks CUDA when available.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(description="Weights dtype on CUDA.")
    models: dict[Role, ModelSpec] = Field(description="One model per role.")
    generation: GenerationDefaults = Field(description="Default diffusion settings.")

    def model(self, role: Role) -> ModelSpec:
        """The spec for ``role``; raises KeyError naming the profile when it has none."""
        try:
            return self.models[role]
        except KeyError:
            raise KeyError(f"profile {self.name!r} has no model for role {role!r}") from None

    def forged_names(self) -> list[str]:
        """Forge recipes this profile needs, in role order."""
        names: list[str] = []
        for role in ROLES:
            spec = self.models.get(role)
            if spec is not None:
                names.extend(n for n in _forged_names_of(spec) if n not in names)
        return names


def _forged_names_of(spec: ModelSpec) -> list[str]:
    """Forged models a spec refers to: its source and any option value that is a forge reference."""
    names = [spec.forged_name] if spec.forged_name else []
    for value in spec.options.values():
        if isinstance(value, str) and value.startswith(FORGE_PREFIX):
            names.append(value[len(FORGE_PREFIX) :])
    return names


# The tiny vision models (forged offline), shared by the tiny profiles.
_TINY_VISION_MODELS: dict[str, Any] = {
    "diffusion": {"source": "forge:tiny-sd"},
    "pickscore": {
        "source": "forge:tiny-pickscore",
        # the forged CLIP's logit scale is 1/0.07 = 14.29: map cos -1..1 onto 0..100
        "options": {
            "processor": "forge:tiny-pickscore",
            "calibration_low": -14.29,
            "calibration_high": 14.29,
        },
    },
    "clipscore": {"source": "forge:tiny-openclip", "options": {"arch": "local-dir"}},
    "vqa": {"source": "forge:tiny-vqa"},
    "aesthetic": {"source": "forge:tiny-aesthetic", "options": {"clip": "forge:tiny-openclip"}},
}
_TINY_GENERATION: dict[str, Any] = {
    "steps": 2,
    "guidance_scale": 1.0,
    "width": 64,
    "height": 64,
    "strength": 0.6,
}

_PROFILE_DATA: dict[str, dict[str, Any]] = {
    "tiny": {
        "description": "Tiny seeded models forged offline; CPU; tests and local dev.",
        "device": "cpu",
        "dtype": "float32",
        "models": {
            **_TINY_VISION_MODELS,
            "llm": {"source": "forge:tiny-llm", "options": {"backend": "transformers"}},
        },
        "generation": _TINY_GENERATION,
    },
    "tiny-smollm": {
        "description": "Tiny forged vision models with the real SmolLM2-135M-Instruct (from PyPI) as LLM.",
        "device": "cpu",
        "dtype": "float32",
        "models": {
            **_TINY_VISION_MODELS,
            "llm": {"source": "forge:smollm2-135m-instruct", "options": {"backend": "transformers"}},
        },
        "generation": _TINY_GENERATION,
    },
    "production": {
        "description": "Real checkpoints by hub id; GPU cluster.",
        "device": "auto",
        "dtype": "float16",
        "models": {
            "diffusion": {"source": "stabilityai/sdxl-turbo", "options": {"variant": "fp16"}},
            "pickscore": {
                "source": "yuvalkirstain/PickScore_v1",
                "options": {
                    "processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                    "calibration_low": 18.0,
                    "calibration_high": 24.0,
                },
            },
            "clipscore": {
                "source": "ViT-L-14-quickgelu",
                "options": {"arch": "ViT-L-14-quickgelu", "pretrained": "openai"},
            },
            "vqa": {"source": "llava-hf/llava-1.5-7b-hf"},
            "aesthetic": {
                "source": "camenduru/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth",
                "options": {"clip": "ViT-L-14-quickgelu", "clip_pretrained": "openai"},
            },
            "llm": {"source": "Qwen/Qwen2.5-7B-Instruct", "options": {"backend": "ray-serve-llm"}},
        },
        "generation": {"steps": 4, "guidance_scale": 0.0, "width": 512, "height": 512, "strength": 0.5},
    },
    "gpu-bench": {
        "description": "Full-size architectures with random weights: times the real compute on a GPU.",
        "device": "cuda",
        "dtype": "float16",
        "models": {
            "diffusion": {"source": "forge:bench-sd15"},
            "pickscore": {"source": "forge:bench-clip-h14", "options": {"processor": "forge:bench-clip-h14"}},
            "clipscore": {"source": "forge:bench-openclip-l14", "options": {"arch": "local-dir"}},
            "vqa": {"source": "forge:bench-vqa"},
            "aesthetic": {"source": "forge:bench-aesthetic", "options": {"clip": "forge:bench-openclip-l14"}},
            # config-only dir: vLLM builds the 1B Llama with random weights (load_format "dummy")
            "llm": {
                "source": "forge:bench-llm-1b",
                "options": {"backend": "vllm", "load_format": "dummy", "dtype": "bfloat16"},
            },
        },
        "generation": {"steps": 4, "guidance_scale": 0.0, "width": 512, "height": 512, "strength": 0.5},
    },
}

PROFILES: dict[str, Profile] = {
    name: Profile.model_validate({"name": name, **data}) for name, data in _PROFILE_DATA.items()
}


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not in the catalogue."""


def get_profile(name: str) -> Profile:
    """Look a profile up by name; the error lists the valid names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfileError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
