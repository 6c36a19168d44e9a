"""The scorer catalogue, as data: one typed entry per scorer, everything else derived from it.

An entry names the scorer, the field its 0–100 value takes in ``ImageScores`` (the status JSON),
its default weight in the overall score, the class that implements it (``"module:Class"``, imported
only when that scorer is built) and the options model its ``ModelSpec.options`` must fit.
``SCORER_NAMES``, ``DEFAULT_WEIGHTS``, ``FIELD_OF_SCORER``, the registry's class lookup and the
``ImageScores`` model are all read from ``CATALOGUE``.

Adding a scorer: one ``ScorerEntry`` (with its options model) here and one module implementing
``from_spec(source, options, *, device, dtype)``. Two tests then say what else must follow: a profile
model for the new role (``weights.profiles``) and a field in the public ``ImageScoresOut``.

This module imports no model library.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scorers.base import Scorer, ScorerError

# ---- options: what each scorer reads from ``ModelSpec.options`` ----------------------------------


class ScorerOptionsError(ScorerError, ValueError):
    """A scorer's options do not fit its options model (unknown name, wrong type, bad value)."""


class UnknownScorerError(ScorerError, ValueError):
    """A scorer name that is not in the catalogue."""


class ScorerOptions(BaseModel):
    """Options every scorer accepts: fault injection for drills and service tests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail: bool | str = Field(
        default=False,
        description="Fault injection: build a scorer that loads nothing and fails every call "
        "(a string is the failure message).",
    )
    fail_with: str | None = Field(
        default=None, description="Fault injection: like 'fail', failing every call with this message."
    )
    fail_on_load: bool | str = Field(
        default=False, description="Fault injection: building the scorer raises (a string is the reason)."
    )

    @property
    def injected_failure(self) -> str | None:
        """The message of an injected scoring failure, or None when none is configured."""
        if self.fail_with:
            return self.fail_with
        if self.fail:
            return self.fail if isinstance(self.fail, str) else "injected failure"
        return None


class PickScoreOptions(ScorerOptions):
    """PickScore (``scorers.pickscore``): a transformers CLIPModel + processor, linearly calibrated."""

    processor: str | None = Field(
        default=None, description="CLIPProcessor source (hub id, path or forge:NAME); None: the model source."
    )
    subfolder: str = Field(default="", description="Subfolder of both sources holding model and processor.")
    calibration_low: float = Field(default=18.0, description="Raw PickScore mapped to 0.")
    calibration_high: float = Field(default=24.0, description="Raw PickScore mapped to 100.")

    @model_validator(mode="after")
    def _calibration_is_increasing(self) -> PickScoreOptions:
        if self.calibration_high <= self.calibration_low:
            raise ValueError(
                f"calibration_high must exceed calibration_low, got low={self.calibration_low}, "
                f"high={self.calibration_high}"
            )
        return self


class ClipScoreOptions(ScorerOptions):
    """CLIPScore (``scorers.clipscore``): an open_clip model by name + tag, or an open_clip local dir."""

    arch: str | None = Field(
        default=None,
        description="open_clip model name, or 'local-dir' when the source is an open_clip dir; "
        "None: the source (a directory is read as a local dir).",
    )
    pretrained: str | None = Field(
        default=None,
        description="open_clip pretrained tag (e.g. 'openai'), checkpoint file, or checkpoint dir with its "
        "open_clip_config.json (forge:NAME allowed).",
    )
    w: float = Field(
        default=2.5, gt=0, description="CLIP-S weight w in w · max(cos, 0) (Hessel et al.: 2.5)."
    )
    text_prefix: str = Field(default="", description="Prepended to the prompt, e.g. 'A photo depicts '.")


class VqaOptions(ScorerOptions):
    """VQAScore (``scorers.vqascore``): P("Yes") of a LLaVA-family image-text-to-text model."""

    question_template: str = Field(
        default='Does this figure show "{prompt}"? Please answer yes or no.',
        description="The question asked per image; '{prompt}' is replaced by the scene prompt.",
    )
    yes_token: str = Field(default="Yes", min_length=1, description="The reply read as yes.")
    no_token: str = Field(default="No", min_length=1, description="The reply read as no.")

    @model_validator(mode="after")
    def _template_names_the_prompt(self) -> VqaOptions:
        if "{prompt}" not in self.question_template:
            raise ValueError("question_template must contain '{prompt}'")
        return self


class AestheticOptions(ScorerOptions):
    """LAION aesthetic predictor (``scorers.aesthetic``): an MLP over a CLIP image tower."""

    clip: str = Field(
        description="The CLIP image tower the MLP was trained on: open_clip model name or local dir "
        "(forge:NAME allowed)."
    )
    clip_arch: str | None = Field(
        default=None, description="open_clip model name for 'clip', or 'local-dir'; as CLIPScore's 'arch'."
    )
    clip_pretrained: str | None = Field(
        default=None,
        description="open_clip pretrained of 'clip': tag, checkpoint file or dir; as CLIPScore's.",
    )


# ---- entries ------------------------------------------------------------------------------------


class ScorerFactory(Protocol):
    """What an entry's implementing class provides: a constructor from a resolved spec."""

    def from_spec(self, source: str, options: Any, *, device: str, dtype: str) -> Scorer: ...


class ScorerEntry(BaseModel):
    """One scorer: its names, its weight, where its code lives and which options it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Scorer name: the profile role, the Serve deployment suffix, the weights key.",
    )
    score_field: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Key of this scorer's 0–100 value in ImageScores and the public status JSON.",
    )
    default_weight: float = Field(
        ge=0, allow_inf_nan=False, description="Weight in the overall score when a request sets none."
    )
    implementation: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'module:Class' implementing from_spec; imported only when this scorer is built.",
    )
    options_model: type[ScorerOptions] = Field(description="The model its ModelSpec.options must fit.")
    description: str = Field(min_length=1, description="What the 0–100 value means, one line.")

    @model_validator(mode="after")
    def _field_is_not_overall(self) -> ScorerEntry:
        if self.score_field == "overall":
            raise ValueError("score_field 'overall' is taken by the weighted overall score")
        return self

    def parse_options(self, options: Mapping[str, Any]) -> ScorerOptions:
        """``options`` as this scorer's options model; a ``ScorerOptionsError`` names each bad field."""
        try:
            return self.options_model.model_validate(dict(options))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'options'}: {error['msg']}"
                for error in exc.errors()
            )
            if any(error["type"] == "extra_forbidden" for error in exc.errors()):
                problems += f" (known options: {sorted(self.options_model.model_fields)})"
            raise ScorerOptionsError(f"{self.name} options: {problems}") from None

    def load_class(self) -> ScorerFactory:
        """Import the implementing class (on demand: building one scorer imports one model library)."""
        module_name, _, class_name = self.implementation.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ScorerError(f"{self.name}: cannot import {module_name}: {exc}") from exc
        scorer_class = getattr(module, class_name, None)
        if scorer_class is None or not callable(getattr(scorer_class, "from_spec", None)):
            raise ScorerError(f"{self.name}: {self.implementation} is not a class with from_spec")
        return cast(ScorerFactory, scorer_class)


class ScorerCatalogue(BaseModel):
    """The scorers, in canonical order (the order of ``scorers_used`` and of the ImageScores fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: tuple[ScorerEntry, ...] = Field(min_length=1, description="One entry per scorer.")

    @model_validator(mode="after")
    def _unique_and_weighted(self) -> ScorerCatalogue:
        for attribute in ("name", "score_field"):
            values = [getattr(entry, attribute) for entry in self.entries]
            duplicates = sorted({value for value in values if values.count(value) > 1})
            if duplicates:
                raise ValueError(f"scorer {attribute}s must be unique; repeated: {duplicates}")
        if not any(entry.default_weight > 0 for entry in self.entries):
            raise ValueError("at least one scorer needs a default weight > 0")
        return self

    def __contains__(self, name: object) -> bool:
        return any(entry.name == name for entry in self.entries)

    @property
    def names(self) -> tuple[str, ...]:
        """Scorer names in canonical order."""
        return tuple(entry.name for entry in self.entries)

    @property
    def default_weights(self) -> dict[str, float]:
        """Scorer name -> default weight (a fresh dict)."""
        return {entry.name: entry.default_weight for entry in self.entries}

    @property
    def field_of_scorer(self) -> dict[str, str]:
        """Scorer name -> its ImageScores / status JSON field (a fresh dict)."""
        return {entry.name: entry.score_field for entry in self.entries}

    def entry(self, name: str) -> ScorerEntry:
        """The entry called ``name``; ``UnknownScorerError`` lists the known names."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise UnknownScorerError(f"unknown scorer {name!r}; choose one of {list(self.names)}")

    def with_entry(self, entry: ScorerEntry) -> ScorerCatalogue:
        """A new catalogue with ``entry`` appended (this one is unchanged)."""
        return ScorerCatalogue(entries=(*self.entries, entry))


CATALOGUE = ScorerCatalogue(
    entries=(
        ScorerEntry(
            name="pickscore",
            score_field="pickscore",
            default_weight=0.50,
            implementation="scorers.pickscore:PickScoreScorer",
            options_model=PickScoreOptions,
            description="PickScore, calibrated to 0–100.",
        ),
        ScorerEntry(
            name="clipscore",
            score_field="clip",
            default_weight=0.25,
            implementation="scorers.clipscore:ClipScoreScorer",
            options_model=ClipScoreOptions,
            description="CLIPScore, 0–100.",
        ),
        ScorerEntry(
            name="vqa",
            score_field="vqa",
            default_weight=0.15,
            implementation="scorers.vqascore:VqaScorer",
            options_model=VqaOptions,
            description="VQAScore, 100 · P(yes).",
        ),
        ScorerEntry(
            name="aesthetic",
            score_field="aesthetic",
            default_weight=0.10,
            implementation="scorers.aesthetic:AestheticScorer",
            options_model=AestheticOptions,
            description="LAION aesthetic rating mapped to 0–100.",
        ),
    )
)

SCORER_NAMES: tuple[str, ...] = CATALOGUE.names
DEFAULT_WEIGHTS: dict[str, float] = CATALOGUE.default_weights
# Scorer name -> field of ImageScores (the public status JSON calls CLIPScore "clip").
FIELD_OF_SCORER: dict[str, str] = CATALOGUE.field_of_scorer
