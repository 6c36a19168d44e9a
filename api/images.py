"""Product reference images: check, normalise and identify what a client sends (no HTTP here).

A reference image arrives base64-encoded in ``GenerateRequest.reference_image`` or as the raw body
of ``POST /api/uploads``. Before a single byte is stored, ``normalise_image`` refuses anything but a
complete PNG, JPEG or WebP within the limits below (``InvalidReferenceImage``: 422;
``ReferenceImageTooLarge``: 413), each message saying what to fix. What passes is returned
EXIF-rotated upright, in RGB (transparency flattened onto white), at most ``MAX_STORED_SIDE`` px a
side, re-encoded as PNG; the generator then fits it to the profile's generation size, as it does a
chain reference. Its id (``img_`` + 32 hex digits) is a digest of that PNG: the same image uploaded
twice has one id, and an idempotent retry with the same base64 stores the same request.

``resolve_reference`` turns a request's ``reference_image`` (base64, or the id of one of the
caller's uploads) into that PNG and the request as stored, with the image replaced by its id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings

from PIL import Image, ImageOps
from pydantic import BaseModel, Field
from scenechain.protocol import GenerateRequest, UploadedImage

from store.storage import Storage

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # decoded file size
MAX_PIXELS = 40_000_000  # width x height, checked from the header before any pixel is decoded
MAX_SIDE = 8192
MAX_STORED_SIDE = 2048  # the generator's largest output side: more is never used
FORMATS = ("PNG", "JPEG", "WEBP")
UPLOAD_CONTENT_TYPES = ("image/png", "image/jpeg", "image/webp", "application/octet-stream")
UPLOAD_ID_RE = re.compile(r"^img_[0-9a-f]{32}$")
# base64 of MAX_IMAGE_BYTES (4 characters per 3 bytes): longer text cannot decode to an allowed size
_MAX_BASE64_CHARS = 4 * -(-MAX_IMAGE_BYTES // 3)
_WHITESPACE = re.compile(rb"\s+")
_FIX = "send a PNG, JPEG or WebP file"


class InvalidReferenceImage(ValueError):
    """A reference image that cannot be used; the message says what to fix (HTTP 422)."""


class ReferenceImageTooLarge(InvalidReferenceImage):
    """A reference image over MAX_IMAGE_BYTES (HTTP 413)."""


class UnsupportedUploadType(InvalidReferenceImage):
    """An upload whose Content-Type is not an image type we take (HTTP 415)."""


class UploadNotFound(LookupError):
    """An upload id that is unknown, or another user's (HTTP 404)."""


class NormalisedImage(BaseModel):
    """A checked reference image, ready to store."""

    id: str = Field(description="img_ + the first 32 hex digits of the PNG's SHA-256.")
    png: bytes = Field(description="The normalised image: upright, RGB, PNG.")
    width: int = Field(description="Width of the normalised image.")
    height: int = Field(description="Height of the normalised image.")
    format: str = Field(description="Format of the file sent (lower case).")
    source_bytes: int = Field(description="Size of the file sent.")

    def uploaded(self) -> UploadedImage:
        return UploadedImage(
            id=self.id, width=self.width, height=self.height, format=self.format, bytes=self.source_bytes
        )


# -- format ---------------------------------------------------------------------------------------


def sniff_format(data: bytes) -> str | None:
    """'PNG', 'JPEG' or 'WEBP' from the file's magic bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def describe_bytes(data: bytes) -> str:
    """What a file that is not PNG/JPEG/WebP looks like, for the refusal message."""
    head = data[:512].lstrip().lower()
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image"
    if data.startswith(b"BM"):
        return "a BMP image"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image"
    if data[4:8] == b"ftyp":
        return f"an ISO media file ({data[8:12].decode('ascii', 'replace')}: HEIC/AVIF/MP4)"
    if data.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG (vector text)"
    if head.startswith((b"<", b"{", b"[")):
        return "text (markup or JSON)"
    try:
        data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "not a recognised image format"
    return "text"


# -- checks and normalisation ----------------------------------------------------------------------


def _check_dimensions(width: int, height: int, field: str) -> None:
    if width < 1 or height < 1:
        raise InvalidReferenceImage(f"{field} has no pixels ({width}x{height}); {_FIX} with content")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InvalidReferenceImage(
            f"{field} is {width}x{height} pixels; each side may be at most {MAX_SIDE}: scale it down"
        )
    if width * height > MAX_PIXELS:
        raise InvalidReferenceImage(
            f"{field} is {width}x{height} = {width * height} pixels; at most {MAX_PIXELS} "
            "(a decompression-bomb guard): scale it down"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white (a product cut-out keeps a clean background)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")  # 16-bit grey
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def normalise_image(data: bytes, field: str = "reference_image") -> NormalisedImage:
    """The checked image, upright, RGB, as PNG; InvalidReferenceImage/ReferenceImageTooLarge else."""
    # 1. size and format, from the bytes alone
    if len(data) > MAX_IMAGE_BYTES:
        raise ReferenceImageTooLarge(
            f"{field} is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (8 MiB): "
            "compress or scale it down"
        )
    if not data:
        raise InvalidReferenceImage(f"{field} is empty; {_FIX}")
    kind = sniff_format(data)
    if kind is None:
        raise InvalidReferenceImage(
            f"{field} is {describe_bytes(data)}, not PNG, JPEG or WebP; convert it to PNG and send that"
        )
    # 2. header, verify, then decode: dimensions are checked before any pixel is decoded, and a
    #    decompression-bomb warning from Pillow is an error here, whatever its global settings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as probe:
                _check_dimensions(*probe.size, field)
                probe.verify()  # PNG: chunk CRCs; leaves the image unusable, so it is opened again
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                image.load()  # a truncated file fails here (Pillow does not pad truncated images)
                upright = ImageOps.exif_transpose(image)
                rgb = _to_rgb(upright)
    except InvalidReferenceImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidReferenceImage(
            f"{field} declares too many pixels to decode ({exc}); at most {MAX_PIXELS} pixels and "
            f"{MAX_SIDE} a side: scale it down"
        ) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ... for bad data
        raise InvalidReferenceImage(
            f"{field} is not a complete {kind} image ({type(exc).__name__}: {exc}); it may be truncated "
            f"or corrupt: export it again and resend"
        ) from None
    # 3. at most MAX_STORED_SIDE a side (aspect kept), re-encoded as PNG
    rgb.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    png = buffer.getvalue()
    return NormalisedImage(
        id=image_id(png),
        png=png,
        width=rgb.width,
        height=rgb.height,
        format=kind.lower(),
        source_bytes=len(data),
    )


def image_id(png: bytes) -> str:
    """The id of a normalised image: a digest of its PNG."""
    return "img_" + hashlib.sha256(png).hexdigest()[:32]


def decode_base64(value: str, field: str = "reference_image") -> bytes:
    """The bytes of base64 text (a data: URL prefix and line breaks allowed); InvalidReferenceImage."""
    text = value.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InvalidReferenceImage(f"{field} is a data: URL without ;base64; send base64 data")
    compact = _WHITESPACE.sub(b"", text.encode("ascii", "replace"))
    if len(compact) > _MAX_BASE64_CHARS:
        raise ReferenceImageTooLarge(
            f"{field} is {len(compact)} base64 characters, more than an image of {MAX_IMAGE_BYTES} bytes "
            "(8 MiB) takes: compress or scale it down"
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        if value.startswith("img_"):
            raise InvalidReferenceImage(
                f"{field} looks like an upload id but is not one (img_ and 32 hex digits, as POST "
                "/api/uploads answers)"
            ) from None
        raise InvalidReferenceImage(
            f"{field} is neither an upload id (from POST /api/uploads) nor valid base64 ({exc}); send the "
            "file base64-encoded, e.g. $(base64 -w0 product.png)"
        ) from None


# -- requests ---------------------------------------------------------------------------------------


def resolve_reference(
    request: GenerateRequest, user: str, storage: Storage
) -> tuple[GenerateRequest, bytes | None]:
    """The request as stored (reference_image replaced by the image's id) and the normalised PNG.

    Raises InvalidReferenceImage (422), ReferenceImageTooLarge (413) or UploadNotFound (404: the
    id is unknown, or another user's); blocking (call it in a thread).
    """
    if request.reference_image is None:
        if request.reference_strength is not None:
            raise InvalidReferenceImage(
                "reference_strength is set but reference_image is not; send reference_image too, or "
                "leave reference_strength out"
            )
        return request, None
    value = request.reference_image.strip()
    if UPLOAD_ID_RE.match(value):
        try:
            png = storage.read_upload(user, value)
        except FileNotFoundError:
            raise UploadNotFound(
                f"upload {value} not found; upload the image with POST /api/uploads first"
            ) from None
        return request.model_copy(update={"reference_image": value}), png
    image = normalise_image(decode_base64(value))
    return request.model_copy(update={"reference_image": image.id}), image.png
