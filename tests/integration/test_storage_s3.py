"""The image/trace store on a real S3-compatible server (moto's server mode on loopback).

A cluster's nodes share one store through ``s3://bucket/prefix``; these tests write through one
``Storage`` and read through another (as another node would), over real HTTP.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from PIL import Image

from store.storage import Storage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    from infra import ServiceUnavailable
    from infra.s3 import s3_server

    try:
        with s3_server() as server:
            yield server
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


def another_node(store: Storage, url: str) -> Storage:
    """A Storage with its own S3 client and listing cache (fsspec shares instances otherwise)."""
    type(store.fs).clear_instance_cache()
    other = Storage(url)
    assert other.fs is not store.fs
    return other


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_scene_images_written_on_one_node_are_read_on_another(s3) -> None:
    writer = Storage(s3.url("run-a"))
    assert not writer.is_local
    first, second = png((255, 0, 0)), png((0, 0, 255))
    writer.write_scene_image("gen1", 1, first)
    writer.write_scene_image("gen1", 2, second)
    reader = another_node(writer, s3.url("run-a"))
    assert reader.read_scene_image("gen1", 1) == first
    assert reader.read_scene_image("gen1", 2) == second
    assert Image.open(io.BytesIO(reader.read_scene_image("gen1", 2))).getpixel((0, 0)) == (0, 0, 255)
    # the object really is in the bucket under the prefix (what any S3 client on the cluster sees)
    assert writer.fs.exists(f"{s3.bucket}/run-a/generations/gen1/scene_1.png")


def test_traces_and_variations_round_trip_without_leftover_temp_files(s3) -> None:
    store = Storage(s3.url("run-b"))
    store.write_trace_file("gen2", 1, "00_original_prompt.txt", "a bike light at night")
    store.write_trace_json("gen2", 1, "quality_scores.json", {"best": 2, "scores": [41.5, 77.0]})
    for k, colour in enumerate([(1, 2, 3), (4, 5, 6)], start=1):
        store.write_variation("gen2", 1, k, png(colour))
    other = another_node(store, s3.url("run-b"))
    assert other.list_trace_files("gen2", 1) == [
        "00_original_prompt.txt",
        "image_1.png",
        "image_2.png",
        "quality_scores.json",
    ]
    assert other.read_trace_file("gen2", 1, "00_original_prompt.txt") == b"a bike light at night"
    assert json.loads(other.read_trace_file("gen2", 1, "quality_scores.json")) == {
        "best": 2,
        "scores": [41.5, 77.0],
    }
    assert other.read_variation("gen2", 1, 2) == png((4, 5, 6))
    assert other.list_trace_files("gen2", 9) == []


def test_missing_objects_raise_file_not_found_and_bad_names_are_refused(s3) -> None:
    store = Storage(s3.url("run-c"))
    with pytest.raises(FileNotFoundError):
        store.read_scene_image("nothing-here", 1)
    with pytest.raises(ValueError, match="invalid generation id"):
        store.write_scene_image("../escape", 1, b"x")
    with pytest.raises(ValueError, match="invalid trace file name"):
        store.write_trace_file("gen3", 1, "../../etc/passwd", b"x")


def test_delete_generation_removes_images_and_traces_only_of_that_generation(s3) -> None:
    store = Storage(s3.url("run-d"))
    for generation in ("keep", "drop"):
        store.write_scene_image(generation, 1, png((9, 9, 9)))
        store.write_trace_file(generation, 1, "00_original_prompt.txt", "p")
    store.delete_generation("drop")
    fresh = another_node(store, s3.url("run-d"))
    with pytest.raises(FileNotFoundError):
        fresh.read_scene_image("drop", 1)
    assert fresh.list_trace_files("drop", 1) == []
    assert fresh.read_scene_image("keep", 1) == png((9, 9, 9))
    assert fresh.list_trace_files("keep", 1) == ["00_original_prompt.txt"]
