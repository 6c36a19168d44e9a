"""The Director with a product reference image: scene 1 starts from it (img2img at the request's
reference_strength), the chain takes over from scene 2, and the record and trace say so."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from fakes import FakePorts
from PIL import Image
from scenechain.protocol import GenerateRequest

from api.images import normalise_image
from api.service import status_document
from director.core import DirectorCore, DirectorSettings
from store.db import Database
from store.storage import Storage


@pytest.fixture
def env(tmp_path: Path) -> tuple[Database, Storage]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield db, Storage(str(tmp_path / "out"))
    db.close()


def product_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 24), (200, 30, 30)).save(buffer, format="PNG")
    return normalise_image(buffer.getvalue()).png


def submit(db: Database, storage: Storage, request: GenerateRequest, reference: bytes | None) -> str:
    """What the Ingress does: the reference stored under the generation, the row holding its id."""
    gid = "g1"
    if reference is not None:
        storage.write_reference_image(gid, reference)
    db.create_generation(
        generation_id=gid, user="alice", request=request.model_dump(mode="json"), seed=7, scenes_total=3
    )
    return gid


def run(db: Database, storage: Storage, ports: FakePorts, gid: str) -> None:
    async def main() -> None:
        core = DirectorCore(db, storage, ports, DirectorSettings())
        assert core.start(gid)
        await core.wait(gid)

    asyncio.run(main())


def test_scene_1_starts_from_the_reference_at_its_strength_then_the_chain_takes_over(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    reference = product_png()
    request = GenerateRequest(
        prompt="a lamp ad", num_scenes=3, seed=7, reference_image="img_" + "a" * 32, reference_strength=0.35
    )
    gid = submit(db, storage, request, reference)
    ports = FakePorts()
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "completed", record.error
    first, second, third = ports.generate_calls
    assert first.reference_png == reference and first.strength == 0.35
    # from scene 2 on: the previous kept scene at the profile's chain strength (None)
    assert second.reference_png == storage.read_scene_image(gid, 1) and second.strength is None
    assert third.reference_png == storage.read_scene_image(gid, 2) and third.strength is None
    assert [scene.reference_from for scene in record.scenes] == [None, 1, 2]
    assert [scene.reference_image for scene in record.scenes] == ["img_" + "a" * 32, None, None]
    assert [scene.mode for scene in record.scenes] == ["img2img", "img2img", "img2img"]
    assert status_document(record).reference_image_used is True
    # the trace of scene 1 keeps the image it started from and how
    assert storage.read_trace_file(gid, 1, "reference_image.png") == reference
    summary = json.loads(storage.read_trace_file(gid, 1, "reference_image.json"))
    assert summary["reference_image"] == "img_" + "a" * 32 and summary["reference_strength"] == 0.35
    assert summary["mode"] == "img2img"
    assert "reference_image.png" not in storage.list_trace_files(gid, 2)


def test_without_a_reference_scene_1_is_text2img_and_the_status_says_so(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    gid = submit(db, storage, GenerateRequest(prompt="a lamp ad", num_scenes=2, seed=7), None)
    ports = FakePorts()
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert ports.generate_calls[0].reference_png is None and ports.generate_calls[0].strength is None
    assert record.scenes[0].mode == "text2img" and record.scenes[0].reference_image is None
    assert status_document(record).reference_image_used is False
    assert storage.list_trace_files(gid, 1) == ["00_original_prompt.txt", "image_1.png"]


def test_a_reference_missing_from_the_store_fails_the_generation_saying_so(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    request = GenerateRequest(prompt="a lamp ad", num_scenes=1, seed=7, reference_image="img_" + "b" * 32)
    gid = submit(db, storage, request, None)
    ports = FakePorts()
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "failed" and ports.generate_calls == []
    assert record.error is not None and "reference image of this generation is missing" in record.error
