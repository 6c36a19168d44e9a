"""The model cache through S3 (moto's server mode on loopback): fetch-models uploads it, each node syncs it.

``fetch-models --to s3://...`` downloads into a staging dir (from a fake hub holding the forged FLUX
twin under "black-forest-labs/FLUX.1-schnell") and uploads the hub-cache layout; a node with
``SCENECHAIN_MODEL_S3`` set syncs the spec's repos into its ``SCENECHAIN_MODEL_DIR`` once, under a
lock, and the production diffusion spec then loads from there through diffusers, offline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra.hub import FakeHub, fake_hub, production_stand_ins

from weights.fetch import MODEL_S3_ENV, fetch_to, sync_from_s3
from weights.forge import ensure_forged, resolve_spec
from weights.profiles import get_profile

pytestmark = pytest.mark.integration

FLUX = "black-forest-labs/FLUX.1-schnell"
AESTHETIC = "camenduru/improved-aesthetic-predictor"
OPEN_CLIP = "timm/vit_large_patch14_clip_224.openai"  # the aesthetic MLP's CLIP tower
TWINS = (
    "twin-flux",
    "twin-sdxl",
    "twin-pickscore",
    "twin-clip-h14-processor",
    "twin-openclip-l14",
    "twin-aesthetic",
    "twin-llava15",
    "twin-qwen25",
)


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    from infra import ServiceUnavailable
    from infra.s3 import s3_server

    try:
        with s3_server() as server:
            yield server
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    forged = {name: ensure_forged(name) for name in TWINS}  # built once per model dir, then cached
    repos = production_stand_ins(forged)
    with fake_hub({repo: repos[repo] for repo in (FLUX, AESTHETIC, OPEN_CLIP)}) as running:
        yield running


@pytest.fixture(scope="module")
def prefix(s3, hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> str:
    """fetch-models --to s3://.../models for the diffusion and aesthetic roles."""
    from huggingface_hub import constants

    url = s3.url("models")
    staging = tmp_path_factory.mktemp("staging")
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False  # this process talks to the fake hub; the session runs offline
    try:
        lines: list[str] = []
        target = fetch_to(
            get_profile("production"),
            url,
            staging=staging,
            roles=["diffusion", "aesthetic"],
            endpoint=hub.endpoint,
            echo=lines.append,
        )
    finally:
        constants.HF_HUB_OFFLINE = offline
    assert target == url
    assert any(line.startswith("uploaded ") for line in lines)
    return url


def _remote_files(s3, url: str) -> set[str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return {key[len(root) :].lstrip("/") for key in fs.find(root)}


def test_the_upload_holds_refs_and_snapshots_not_blobs(s3, prefix: str) -> None:
    files = _remote_files(s3, prefix)
    flux = "models--black-forest-labs--FLUX.1-schnell"
    assert f"{flux}/refs/main" in files
    assert any(
        name.startswith(f"{flux}/snapshots/") and name.endswith("transformer/config.json") for name in files
    )
    assert not any("/blobs/" in name for name in files)
    assert not any(name.endswith("flux1-schnell.safetensors") for name in files)  # never downloaded


def test_a_node_syncs_once_even_with_replicas_starting_together(s3, prefix: str, tmp_path: Path) -> None:
    node_dir = tmp_path / "node-models"
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            results.append(sync_from_s3(prefix, node_dir, repos=[FLUX]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    copied = sorted(results, key=len)
    assert copied[0] == copied[1] == [] and copied[2], "exactly one replica copies; the others find it done"
    assert all(name.startswith("models--black-forest-labs--FLUX.1-schnell/") for name in copied[2])
    assert not (
        node_dir / "models--camenduru--improved-aesthetic-predictor"
    ).exists()  # only the spec's repos
    assert not list(node_dir.rglob(".*.part-*"))
    # a later start finds everything in place
    assert sync_from_s3(prefix, node_dir, repos=[FLUX]) == []


def test_the_production_spec_loads_offline_from_the_synced_cache(
    s3, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import AutoPipelineForText2Image

    node_dir = tmp_path / "node-models"
    monkeypatch.setenv(MODEL_S3_ENV, prefix)
    spec = resolve_spec(get_profile("production").model("diffusion"), node_dir)
    assert Path(spec.source).is_relative_to(node_dir)
    pipeline = AutoPipelineForText2Image.from_pretrained(spec.source)
    assert type(pipeline).__name__ == "FluxPipeline"
    aesthetic = resolve_spec(get_profile("production").model("aesthetic"), node_dir)
    assert Path(aesthetic.source).is_file() and aesthetic.source.endswith("sac+logos+ava1-l14-linearMSE.pth")
    assert aesthetic.options["clip_pretrained"].endswith("open_clip_model.safetensors")  # synced with it


def test_the_node_start_sync_copies_the_whole_cache(s3, prefix: str, tmp_path: Path) -> None:
    from weights.fetch import sync_node

    node_dir = tmp_path / "node"
    environ = {MODEL_S3_ENV: prefix, "SCENECHAIN_MODEL_DIR": str(node_dir)}
    copied = sync_node(environ)
    assert {name.split("/")[0] for name in copied} == {
        "models--black-forest-labs--FLUX.1-schnell",
        "models--camenduru--improved-aesthetic-predictor",
        "models--timm--vit_large_patch14_clip_224.openai",
    }
    assert sync_node(environ) == []  # the next start copies nothing
    assert sync_node({"SCENECHAIN_MODEL_DIR": str(node_dir)}) == []  # no prefix: nothing to do
