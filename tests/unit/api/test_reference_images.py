"""Product reference images: the validator on real crafted files, then the HTTP edge (uploads and
submissions) on the real FastAPI app, SQLite DB and store: good images are stored normalised, hostile
ones are a 4xx that says what to fix and leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import RecordingDirector
from fastapi.testclient import TestClient
from PIL import Image

from api.auth import mint_token
from api.images import (
    MAX_IMAGE_BYTES,
    InvalidReferenceImage,
    ReferenceImageTooLarge,
    decode_base64,
    normalise_image,
)
from api.ingress import IngressService, create_api
from serve.config import AppArgs
from store.storage import Storage

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def solid_png(colour: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    return encode(Image.new("RGB", size, colour), "PNG")


def noisy_png(size: tuple[int, int] = (64, 64)) -> bytes:
    """A PNG that compresses badly (random pixels), so a cut-off copy misses image data."""
    pixels = hashlib.shake_256(b"noise").digest(size[0] * size[1] * 3)
    return encode(Image.frombytes("RGB", size, pixels), "PNG")


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


# -- the validator on crafted files -----------------------------------------------------------------


def test_an_exif_orientation_6_jpeg_is_stored_upright_in_rgb() -> None:
    # 40x20 as stored: red left half, blue right half; orientation 6 says "rotate 90 degrees clockwise"
    sideways = Image.new("RGB", (40, 20), RED)
    sideways.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = normalise_image(encode(sideways, "JPEG", exif=exif.tobytes(), quality=95))
    assert (image.width, image.height, image.format) == (20, 40, "jpeg")
    upright = decoded(image.png)
    assert upright.mode == "RGB" and upright.size == (20, 40)
    top, bottom = upright.getpixel((10, 3)), upright.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 60, top  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert "exif" not in upright.info  # nothing left to rotate it twice


def test_a_png_declaring_20000x20000_pixels_is_refused_as_a_bomb_before_decoding() -> None:
    bomb = encode(Image.new("1", (20000, 20000)), "PNG", optimize=True)
    assert len(bomb) < 100_000  # 400 MP in a few KB: what makes it a bomb
    with pytest.raises(InvalidReferenceImage, match=r"too many pixels.*at most 40000000 pixels"):
        normalise_image(bomb)


def test_more_pixels_than_the_cap_within_pillows_own_limit_are_refused_too() -> None:
    with pytest.raises(InvalidReferenceImage, match="7000x7000 = 49000000 pixels; at most 40000000"):
        normalise_image(encode(Image.new("1", (7000, 7000)), "PNG"))


def test_a_side_over_8192_pixels_is_refused_naming_the_limit() -> None:
    with pytest.raises(InvalidReferenceImage, match="9000x10 pixels; each side may be at most 8192"):
        normalise_image(encode(Image.new("RGB", (9000, 10)), "PNG"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_truncated_file_is_refused_as_not_complete(fmt: str) -> None:
    whole = noisy_png() if fmt == "PNG" else encode(decoded(noisy_png()).convert("RGB"), fmt)
    normalise_image(whole)  # the whole file is fine
    with pytest.raises(InvalidReferenceImage, match=f"not a complete {fmt} image.*truncated or corrupt"):
        normalise_image(whole[: len(whole) * 3 // 5])


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (encode(Image.new("RGB", (8, 8), RED), "GIF"), "a GIF image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (encode(Image.new("RGB", (8, 8), RED), "BMP"), "a BMP image"),
        (encode(Image.new("RGB", (8, 8), RED), "TIFF"), "a TIFF image"),
        (hashlib.shake_256(b"random").digest(4096), "not a recognised image format"),
        (b"just some text", "text"),
    ],
    ids=["gif", "svg", "svg-xml", "bmp", "tiff", "random-bytes", "text"],
)
def test_a_file_that_is_not_png_jpeg_or_webp_is_refused_naming_what_it_is(data: bytes, named: str) -> None:
    with pytest.raises(InvalidReferenceImage, match=f"is {named}.*not PNG, JPEG or WebP"):
        normalise_image(data)


def test_a_png_with_a_valid_header_but_corrupt_data_is_refused() -> None:
    png = bytearray(noisy_png())
    png[len(png) // 2] ^= 0xFF  # breaks the IDAT chunk's CRC
    with pytest.raises(InvalidReferenceImage, match="not a complete PNG image"):
        normalise_image(bytes(png))


def test_webp_is_taken_and_stored_as_png() -> None:
    image = normalise_image(encode(Image.new("RGB", (30, 20), BLUE), "WEBP", lossless=True))
    assert (image.width, image.height, image.format) == (30, 20, "webp")
    assert decoded(image.png).convert("RGB").getpixel((15, 10)) == BLUE


def test_transparency_is_flattened_onto_white_and_the_result_is_rgb() -> None:
    cut_out = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    cut_out.paste((255, 0, 0, 255), (5, 5, 15, 15))
    stored = decoded(normalise_image(encode(cut_out, "PNG")).png)
    assert stored.mode == "RGB"
    assert stored.getpixel((0, 0)) == (255, 255, 255) and stored.getpixel((10, 10)) == RED


def test_a_cmyk_jpeg_becomes_rgb() -> None:
    image = normalise_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    red = decoded(image.png).getpixel((8, 8))
    assert decoded(image.png).mode == "RGB" and red[0] > 200 and red[1] < 60


def test_a_large_image_is_stored_at_most_2048_a_side_with_its_aspect_kept() -> None:
    image = normalise_image(encode(Image.new("RGB", (4096, 1024), RED), "JPEG"))
    assert (image.width, image.height) == (2048, 512)


def test_the_id_is_a_digest_of_the_normalised_png() -> None:
    first, second = normalise_image(solid_png(RED)), normalise_image(solid_png(RED))
    assert first.id == second.id and first.id.startswith("img_") and len(first.id) == 36
    assert normalise_image(solid_png(BLUE)).id != first.id


def test_over_8_mib_is_too_large() -> None:
    with pytest.raises(ReferenceImageTooLarge, match=f"limit is {MAX_IMAGE_BYTES} bytes"):
        normalise_image(b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES))
    with pytest.raises(ReferenceImageTooLarge, match="base64 characters"):
        decode_base64("A" * (MAX_IMAGE_BYTES * 4 // 3 + 8))


def test_base64_may_be_wrapped_or_a_data_url_but_must_be_base64() -> None:
    png = solid_png(RED)
    text = base64.b64encode(png).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert decode_base64(wrapped) == decode_base64(f"data:image/png;base64,{text}") == png
    with pytest.raises(InvalidReferenceImage, match="nor valid base64"):
        decode_base64("this is not base64!")
    with pytest.raises(InvalidReferenceImage, match="looks like an upload id"):
        decode_base64("img_1234")
    with pytest.raises(InvalidReferenceImage, match="without ;base64"):
        decode_base64("data:image/png,abc")


# -- the HTTP edge ------------------------------------------------------------------------------------


@dataclass
class Edge:
    service: IngressService
    client: TestClient
    out_dir: Path

    def headers(self, user: str = "alice", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}", **extra}

    def files(self) -> list[str]:
        """Every file in the store, relative to it (the SQLite database lives there too: not counted)."""
        paths = (p for p in self.out_dir.rglob("*") if p.is_file() and not p.name.startswith("scenechain.db"))
        return sorted(str(p.relative_to(self.out_dir)) for p in paths)

    def upload(self, data: bytes, user: str = "alice", content_type: str = "image/png") -> object:
        return self.client.post(
            "/api/uploads", content=data, headers=self.headers(user, **{"Content-Type": content_type})
        )

    def generate(self, body: dict[str, object], user: str = "alice", **headers: str) -> object:
        return self.client.post("/api/generate", json=body, headers=self.headers(user, **headers))


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    out_dir = tmp_path / "out"
    service = IngressService(AppArgs(output_dir=str(out_dir)).ingress_settings(), RecordingDirector())
    with TestClient(create_api(service), raise_server_exceptions=False) as client:
        yield Edge(service, client, out_dir)
    service.db.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_upload_answers_201_and_stores_the_normalised_png_under_the_user(edge: Edge) -> None:
    answer = edge.upload(encode(Image.new("RGB", (30, 20), RED), "JPEG"), content_type="image/jpeg")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["width"] == 30 and body["height"] == 20 and body["format"] == "jpeg" and body["bytes"] > 0
    user_key = hashlib.sha256(b"alice").hexdigest()[:32]
    assert edge.files() == [f"uploads/{user_key}/{body['id']}.png"]
    stored = (edge.out_dir / edge.files()[0]).read_bytes()
    assert decoded(stored).size == (30, 20) and body["id"] == normalise_image(stored).id


def test_a_generation_from_an_upload_stores_its_id_and_a_copy_under_the_generation(edge: Edge) -> None:
    upload_id = edge.upload(solid_png(RED)).json()["id"]
    answer = edge.generate({"prompt": "a lamp ad", "num_scenes": 1, "reference_image": upload_id})
    assert answer.status_code == 202, answer.text
    gid = answer.json()["id"]
    record = edge.service.db.get(gid)
    assert record.request["reference_image"] == upload_id and record.request["reference_strength"] is None
    stored = edge.out_dir / "generations" / gid / "reference_image.png"
    assert stored.read_bytes() == edge.service.storage.read_upload("alice", upload_id)
    status = edge.client.get(f"/api/status/{gid}", headers=edge.headers()).json()
    assert status["reference_image_used"] is False  # not yet: scene 1 has not been generated


def test_another_users_upload_id_is_a_404_as_if_unknown_and_nothing_is_stored(edge: Edge) -> None:
    upload_id = edge.upload(solid_png(RED), user="alice").json()["id"]
    before = edge.files()
    for reference in (upload_id, "img_" + "0" * 32):
        answer = edge.generate({"prompt": "a lamp ad", "reference_image": reference}, user="bob")
        assert answer.status_code == 404, answer.text
        assert (
            answer.json()["detail"]
            == f"upload {reference} not found; upload the image with POST /api/uploads first"
        )
    assert edge.files() == before
    assert edge.service.db.list_for_user("bob", limit=10, offset=0)[1] == 0


def test_inline_base64_is_stored_as_its_id_and_idempotent_retries_still_match(edge: Edge) -> None:
    red, blue = solid_png(RED), solid_png(BLUE)
    body = {"prompt": "a lamp ad", "num_scenes": 1, "reference_image": b64(red), "reference_strength": 0.3}
    first = edge.generate(body, **{"Idempotency-Key": "ref-1"})
    assert first.status_code == 202, first.text
    gid = first.json()["id"]
    record = edge.service.db.get(gid)
    # the row holds the id, not the image (the base64 would bloat every read of the row)
    assert record.request["reference_image"] == normalise_image(red).id
    assert record.request["reference_strength"] == 0.3
    assert len(str(record.request)) < 1000
    assert edge.files() == [f"generations/{gid}/reference_image.png"]
    # the same body again (even as a data: URL) is the same generation; another image is a conflict
    again = edge.generate(
        {**body, "reference_image": "data:image/png;base64," + b64(red)}, **{"Idempotency-Key": "ref-1"}
    )
    assert again.status_code == 202 and again.json()["id"] == gid
    other = edge.generate({**body, "reference_image": b64(blue)}, **{"Idempotency-Key": "ref-1"})
    assert other.status_code == 409, other.text
    assert edge.files() == [f"generations/{gid}/reference_image.png"]


HOSTILE = [
    (b64(encode(Image.new("RGB", (8, 8), RED), "GIF")), 422, "is a GIF image, not PNG, JPEG or WebP"),
    (b64(b'<svg xmlns="http://www.w3.org/2000/svg"/>'), 422, "is SVG (vector text)"),
    (b64(hashlib.shake_256(b"random").digest(2048)), 422, "not a recognised image format"),
    ("not base64 at all!", 422, "nor valid base64"),
    (b64(noisy_png()[:2000]), 422, "not a complete PNG image"),
    (b64(encode(Image.new("1", (20000, 20000)), "PNG", optimize=True)), 422, "too many pixels"),
    (b64(encode(Image.new("RGB", (8200, 8)), "PNG")), 422, "each side may be at most 8192"),
    (b64(b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES)), 413, f"{MAX_IMAGE_BYTES} bytes"),
]
HOSTILE_IDS = ["gif", "svg", "random", "base64", "truncated", "bomb", "wide", "over-8-MiB"]


@pytest.mark.parametrize(("reference", "status", "message"), HOSTILE, ids=HOSTILE_IDS)
def test_a_hostile_reference_image_is_a_4xx_and_nothing_is_stored(
    edge: Edge, reference: str, status: int, message: str
) -> None:
    answer = edge.generate({"prompt": "a lamp ad", "reference_image": reference})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"] and "reference_image" in answer.json()["detail"]
    assert edge.files() == []
    assert edge.service.db.list_for_user("alice", limit=10, offset=0)[1] == 0


@pytest.mark.parametrize(("reference", "status", "message"), HOSTILE, ids=HOSTILE_IDS)
def test_a_hostile_upload_is_a_4xx_and_nothing_is_stored(
    edge: Edge, reference: str, status: int, message: str
) -> None:
    data = reference.encode() if reference == "not base64 at all!" else base64.b64decode(reference)
    answer = edge.upload(data)
    expected = (422, "is text") if reference == "not base64 at all!" else (status, message)
    assert answer.status_code == expected[0], answer.text
    assert expected[1] in answer.json()["detail"]
    assert edge.files() == []


def test_an_upload_must_be_a_raw_image_body(edge: Edge) -> None:
    answer = edge.upload(solid_png(RED), content_type="multipart/form-data; boundary=x")
    assert answer.status_code == 415, answer.text
    assert "send the raw image file as the body" in answer.json()["detail"]
    declared_too_big = edge.client.post(
        "/api/uploads",
        content=b"x",
        headers=edge.headers(**{"Content-Type": "image/png", "Content-Length": str(MAX_IMAGE_BYTES + 1)}),
    )
    assert declared_too_big.status_code == 413
    # a body sent in chunks (no Content-Length) is cut off as soon as it passes the limit
    chunks = (bytes(1024 * 1024) for _ in range(9))
    chunked = edge.client.post(
        "/api/uploads", content=chunks, headers=edge.headers(**{"Content-Type": "image/png"})
    )
    assert chunked.status_code == 413, chunked.text
    assert "over 8388608 bytes" in chunked.json()["detail"]
    assert edge.files() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"reference_strength": 0.4}, "reference_strength is set but reference_image is not"),
        (
            {"reference_image": b64(solid_png(RED)), "reference_strength": 0},
            "allowed range is above 0.0 up to 1.0",
        ),
    ],
)
def test_reference_strength_needs_an_image_and_a_denoising_step(
    edge: Edge, body: dict[str, object], message: str
) -> None:
    answer = edge.generate({"prompt": "a lamp ad", **body})
    assert answer.status_code == 422, answer.text
    assert message in str(answer.json()["detail"])
    assert edge.files() == []


def test_uploads_are_per_user_in_any_fsspec_store() -> None:
    # memory:// stands for S3 here: the same fsspec calls, no local paths
    storage = Storage("memory://reference-images-test")
    png = normalise_image(solid_png(RED))
    storage.write_upload("alice", png.id, png.png)
    assert storage.read_upload("alice", png.id) == png.png
    with pytest.raises(FileNotFoundError):
        storage.read_upload("bob", png.id)
    storage.write_reference_image("g1", png.png)
    assert storage.read_reference_image("g1") == png.png
    storage.delete_generation("g1")  # retention takes the generation's copy with it
    with pytest.raises(FileNotFoundError):
        storage.read_reference_image("g1")
    with pytest.raises(ValueError, match="invalid generation id"):
        storage.upload_path("alice", "../../etc/passwd")
