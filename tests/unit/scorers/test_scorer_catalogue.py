"""The scorer catalogue is the one place a scorer is declared; everything else follows from it.

Covers: the built-in entries (names, public fields, weights), the tables and the ImageScores model
derived from them, typed options (a typo is a ValueError naming the field, before anything loads),
lazy imports, the tests that make a new entry fail loudly until the profiles and the public
protocol follow, and "adding a scorer = one catalogue entry + one module" with a real fifth scorer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from PIL import Image

from scorers import (
    CATALOGUE,
    DEFAULT_WEIGHTS,
    FIELD_OF_SCORER,
    SCORER_NAMES,
    ImageScores,
    ScorerCatalogue,
    ScorerEntry,
    ScorerError,
    ScoreResult,
    ScorerOptionsError,
    UnknownScorerError,
    aggregate,
    build_scorer,
)
from scorers import registry as scorer_registry
from scorers.aggregate import image_scores_model
from scorers.catalogue import PickScoreOptions
from weights.profiles import PROFILES, ROLES, ModelSpec, Role

TESTS_UNIT = Path(__file__).resolve().parent
REPO = TESTS_UNIT.parents[2]
NOT_SCORER_ROLES = {"diffusion", "llm"}


def _result(name: str, normalized: list[float]) -> ScoreResult:
    return ScoreResult(scorer=name, raw=normalized, normalized=normalized, seconds=0.0)


# ---- the built-in catalogue and what is derived from it ------------------------------------------


def test_the_catalogue_keeps_names_public_fields_and_default_weights() -> None:
    rows = [(e.name, e.score_field, e.default_weight) for e in CATALOGUE.entries]
    assert rows == [
        ("pickscore", "pickscore", 0.50),
        ("clipscore", "clip", 0.25),
        ("vqa", "vqa", 0.15),
        ("aesthetic", "aesthetic", 0.10),
    ]
    assert all(
        entry.description and entry.implementation.startswith("scorers.") for entry in CATALOGUE.entries
    )


def test_every_table_is_derived_from_the_catalogue() -> None:
    from serve.config import SCORER_ROLES  # noqa: PLC0415  # the serve layer reads the same names

    assert SCORER_NAMES == CATALOGUE.names == SCORER_ROLES == scorer_registry.SCORER_NAMES
    assert {e.name: e.default_weight for e in CATALOGUE.entries} == DEFAULT_WEIGHTS
    assert {e.name: e.score_field for e in CATALOGUE.entries} == FIELD_OF_SCORER
    for entry in CATALOGUE.entries:  # the registry's class lookup is the entry's import path
        scorer_class = entry.load_class()
        assert f"{scorer_class.__module__}:{scorer_class.__name__}" == entry.implementation  # type: ignore[attr-defined]
        assert scorer_class.name == entry.name  # type: ignore[attr-defined]


def test_image_scores_has_one_optional_field_per_scorer_then_overall() -> None:
    assert list(ImageScores.model_fields) == ["pickscore", "clip", "vqa", "aesthetic", "overall"]
    for entry in CATALOGUE.entries:
        field = ImageScores.model_fields[entry.score_field]
        assert field.default is None and field.description == entry.description
    scores = ImageScores.model_validate({"clip": 40.0, "overall": 40.0})
    assert json.loads(scores.model_dump_json()) == {
        "pickscore": None,
        "clip": 40.0,
        "vqa": None,
        "aesthetic": None,
        "overall": 40.0,
    }
    with pytest.raises(ValueError, match="brightness"):
        ImageScores.model_validate({"brightness": 1.0, "overall": 1.0})  # extra="forbid"
    assert image_scores_model(CATALOGUE) is ImageScores  # built once per catalogue


# ---- what must follow a new entry: fails loudly until it does ------------------------------------


def test_every_public_score_field_is_a_field_of_the_http_protocol() -> None:
    from scenechain.protocol import ImageScoresOut  # noqa: PLC0415

    missing = [e.score_field for e in CATALOGUE.entries if e.score_field not in ImageScoresOut.model_fields]
    assert not missing, f"add {missing} to clients/python/scenechain/protocol.py ImageScoresOut"
    assert "overall" in ImageScoresOut.model_fields


def test_profile_roles_include_exactly_the_catalogue_scorers() -> None:
    assert set(get_args(Role)) == set(ROLES)
    scorer_roles = [role for role in ROLES if role not in NOT_SCORER_ROLES]
    assert sorted(scorer_roles) == sorted(SCORER_NAMES), "weights.profiles Role must name every scorer"
    for profile in PROFILES.values():
        for entry in CATALOGUE.entries:
            spec = profile.model(entry.name)  # KeyError: this profile has no model for the new scorer
            entry.parse_options(spec.options)  # every profile's options fit the scorer's options model


# ---- typed options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("pickscore", {"calibration_hgih": 24.0}, "calibration_hgih: Extra inputs are not permitted"),
        ("pickscore", {"calibration_low": 5.0, "calibration_high": 5.0}, "calibration_high must exceed"),
        ("clipscore", {"w": "large"}, "w: Input should be a valid number"),
        ("clipscore", {"pretrianed": "openai"}, "pretrianed: Extra inputs are not permitted"),
        ("vqa", {"question_template": "Is this {subject}?"}, "must contain '{prompt}'"),
        ("aesthetic", {}, "clip: Field required"),
        ("aesthetic", {"clip": "ViT-L-14", "fail_on_lod": "x"}, "fail_on_lod: Extra inputs"),
    ],
)
def test_bad_scorer_options_are_a_value_error_naming_the_field(
    name: str, options: dict[str, Any], message: str
) -> None:
    # the source names no model: the options error must come before any forge or load
    spec = ModelSpec(source="forge:no-such-model", options=options)
    with pytest.raises(ScorerOptionsError, match=message) as caught:
        build_scorer(name, spec)
    assert isinstance(caught.value, ValueError) and str(caught.value).startswith(f"{name} options: ")
    assert ("known options" in str(caught.value)) == ("Extra inputs" in message)


def test_options_fill_defaults_and_fault_injection_is_typed() -> None:
    options = CATALOGUE.entry("pickscore").parse_options({"processor": "some/processor"})
    assert isinstance(options, PickScoreOptions)
    assert (options.processor, options.calibration_low, options.calibration_high) == (
        "some/processor",
        18.0,
        24.0,
    )
    assert options.injected_failure is None
    spec = ModelSpec(source="forge:no-such-model")
    failing = build_scorer("vqa", spec, options={"fail": "GPU fell off the bus"})
    with pytest.raises(ScorerError, match="GPU fell off the bus"):
        failing.score("a cat", [Image.new("RGB", (8, 8))])
    with pytest.raises(ScorerError, match=r"fail_on_load \(injected\)"):
        build_scorer("clipscore", spec, options={"fail_on_load": True})


# ---- catalogue rules -----------------------------------------------------------------------------


def _entry(**changes: Any) -> ScorerEntry:
    data = CATALOGUE.entry("clipscore").model_dump() | changes
    return ScorerEntry.model_validate(data)


def test_the_catalogue_rejects_clashing_or_malformed_entries() -> None:
    with pytest.raises(ValueError, match="names must be unique"):
        CATALOGUE.with_entry(_entry(score_field="clip2"))
    with pytest.raises(ValueError, match="score_fields must be unique"):
        CATALOGUE.with_entry(_entry(name="clip2"))
    with pytest.raises(ValueError, match="'overall' is taken"):
        _entry(name="x", score_field="overall")
    with pytest.raises(ValueError, match="implementation"):
        _entry(implementation="scorers.clipscore.ClipScoreScorer")  # no ':'
    with pytest.raises(ValueError, match="default weight > 0"):
        ScorerCatalogue(entries=(_entry(default_weight=0.0),))
    with pytest.raises(
        UnknownScorerError, match=r"choose one of \['pickscore', 'clipscore', 'vqa', 'aesthetic'\]"
    ):
        build_scorer("hpsv2", ModelSpec(source="x"))
    with pytest.raises(ScorerError, match="cannot import"):
        _entry(name="ghost", score_field="ghost", implementation="scorers.no_such_module:Ghost").load_class()


def test_importing_scorers_or_building_one_imports_no_other_scorer_module() -> None:
    code = """
import json, sys
import scorers
from weights.forge import default_model_dir
from weights.profiles import get_profile
before = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "open_clip"))
scorers.build_scorer("clipscore", get_profile("tiny").model("clipscore"), model_dir=default_model_dir())
print(json.dumps({"heavy_on_import": before, "scorers": sorted(m for m in sys.modules if m.startswith("scorers."))}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["heavy_on_import"] == []
    assert "scorers.clipscore" in loaded["scorers"]
    assert not {"scorers.pickscore", "scorers.vqascore", "scorers.aesthetic"} & set(loaded["scorers"])


# ---- adding a scorer = one catalogue entry + one module ------------------------------------------


@pytest.fixture
def with_brightness(monkeypatch: pytest.MonkeyPatch) -> ScorerCatalogue:
    """The built-in catalogue plus a brightness scorer from a module that nothing else imports."""
    monkeypatch.syspath_prepend(str(TESTS_UNIT))
    monkeypatch.delitem(sys.modules, "brightness_scorer", raising=False)
    from brightness_scorer import BrightnessOptions  # noqa: PLC0415

    entry = ScorerEntry(
        name="brightness",
        score_field="brightness",
        default_weight=0.20,
        implementation="brightness_scorer:BrightnessScorer",
        options_model=BrightnessOptions,
        description="Mean luminance, 0–100.",
    )
    return CATALOGUE.with_entry(entry)


def test_adding_a_scorer_is_one_catalogue_entry_and_one_module(with_brightness: ScorerCatalogue) -> None:
    catalogue = with_brightness
    black, white = Image.new("RGB", (16, 16), (0, 0, 0)), Image.new("RGB", (16, 16), (255, 255, 255))
    half = Image.new("RGB", (16, 16), (0, 0, 0))
    half.paste((255, 255, 255), (0, 0, 16, 8))  # top half white: mean luma 127.5
    images = [black, half, white]
    spec = ModelSpec(source="builtin:luma")

    # 1. the registry builds it from the entry, with its own typed options
    scorer = build_scorer("brightness", spec, catalogue=catalogue)
    result = scorer.score("anything", images)
    assert result.scorer == "brightness"
    assert result.raw == pytest.approx([0.0, 127.5, 255.0])
    assert result.normalized == pytest.approx([0.0, 50.0, 100.0])
    inverted = build_scorer("brightness", spec, options={"invert": True}, catalogue=catalogue)
    assert inverted.score("anything", images).normalized == pytest.approx([100.0, 50.0, 0.0])
    with pytest.raises(ScorerOptionsError, match="invertt"):
        build_scorer("brightness", spec, options={"invertt": True}, catalogue=catalogue)

    # 2. aggregate counts it with its default weight and reports it under its public field
    results = {
        "pickscore": _result("pickscore", [60.0, 60.0, 60.0]),
        "clipscore": _result("clipscore", [30.0, 30.0, 30.0]),
        "vqa": _result("vqa", [90.0, 90.0, 90.0]),
        "aesthetic": _result("aesthetic", [50.0, 50.0, 50.0]),
        "brightness": result,
    }
    summary = aggregate(results, catalogue=catalogue)
    assert summary.scorers_used == ["pickscore", "clipscore", "vqa", "aesthetic", "brightness"]
    assert summary.weights["brightness"] == pytest.approx(0.20 / 1.20)
    base = 0.50 * 60 + 0.25 * 30 + 0.15 * 90 + 0.10 * 50
    for index, brightness in enumerate([0.0, 50.0, 100.0]):
        assert summary.per_image[index].overall == pytest.approx((base + 0.20 * brightness) / 1.20)
    assert summary.best_index == 2
    dumped = summary.model_dump(mode="json")["per_image"][1]
    assert list(dumped) == ["pickscore", "clip", "vqa", "aesthetic", "brightness", "overall"]
    assert dumped["brightness"] == pytest.approx(50.0)

    # 3. the built-in catalogue is untouched
    assert "brightness" not in CATALOGUE and "brightness" not in ImageScores.model_fields
    with pytest.raises(UnknownScorerError):
        build_scorer("brightness", spec)
    with pytest.raises(ValueError, match="unknown scorers in results"):
        aggregate(results)
