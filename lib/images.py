"""Image inputs for ComfyUI jobs: validated by content, normalised, and fitted into RunPod's body limit.

Every user-supplied image goes through :func:`load_image` before it reaches a payload:

* the format is recognised from the bytes, never from the file name (PNG, JPEG and WEBP are accepted;
  a name whose extension disagrees with the content is accepted with a warning that says so);
* the pixel count is read from the header and checked against :data:`MAX_PIXELS` *before* any pixel
  is decoded, so a decompression bomb costs a few hundred bytes of parsing, not gigabytes of memory;
* empty, damaged and truncated files are refused with a message naming the file;
* the EXIF orientation is applied (phones store portraits sideways and rely on that tag, while
  ComfyUI's LoadImage does apply it and a CPU pipeline would not — we normalise once, here);
* transparency is flattened onto white. ComfyUI's LoadImage turns RGBA into an RGB ``IMAGE`` plus a
  separate ``MASK`` and none of the console's workflows uses that mask, so keeping alpha would only let
  whatever colour hides under transparent pixels (often black) leak into the face detector.

:func:`fit_images` then encodes a set of images so that the whole ``/run`` body stays under
RunPod's 10,000,000-byte limit (base64 makes every image 4/3 larger), downscaling and re-encoding
step by step, or refuses with a message that gives the sizes.
"""
from __future__ import annotations

import base64
import io
import json
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from lib.errors import ConsoleError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 40_000_000
RUN_BODY_LIMIT = 10_000_000
RUNSYNC_BODY_LIMIT = 20_000_000
# Room left in the body for what the caller may add after fitting (webhook URL, policy, job tags).
BODY_MARGIN = 16_384
# Downscaling stops here: below this longest side a face is too small for the swapper's 128 px crop
# or a reference face to look right, so fit_images refuses rather than send something useless.
MIN_LONG_SIDE = 512
JPEG_QUALITY = 92
DOWNSCALE_STEP = 0.8
# A lossless PNG of a photo is rarely under ~1.5 bytes per pixel; above this size trying PNG first
# only costs seconds of encoding before JPEG is chosen anyway.
PNG_MAX_PIXELS = 4_000_000

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSION = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
_EXTENSIONS_OF = {"PNG": {".png"}, "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"}, "WEBP": {".webp"}}
_OPENERS = {"PNG": PngImagePlugin.PngImageFile, "JPEG": JpegImagePlugin.JpegImageFile,
            "WEBP": WebPImagePlugin.WebPImageFile}
# Formats people often upload by mistake: recognising them lets us say what the file is.
# (signature, description, is it a picture at all)
_OTHER_SIGNATURES = (
    (b"GIF87a", "a GIF image", True), (b"GIF89a", "a GIF image", True), (b"BM", "a BMP image", True),
    (b"II*\x00", "a TIFF image", True), (b"MM\x00*", "a TIFF image", True),
    (b"\x00\x00\x01\x00", "an ICO icon", True), (b"8BPS", "a Photoshop document", True),
    (b"%PDF", "a PDF document", False), (b"PK\x03\x04", "a ZIP archive", False),
)


UPLOAD_INSTEAD = "upload a PNG, JPEG or WEBP file"


class ImageError(ConsoleError, ValueError):
    """An image input cannot be used; ``str(err)`` is a complete message starting with the file name."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class BodyTooLarge(ValueError):
    """The images cannot be made small enough for the request body limit."""

    def __init__(self, message: str, *, needed: int, limit: int):
        super().__init__(message)
        self.needed = needed
        self.limit = limit


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding pixels."""

    name: str
    format: str
    width: int
    height: int
    mode: str
    frames: int
    size_bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, eq=False)
class CheckedImage:
    """A decoded, upright, opaque RGB image ready to be encoded or processed."""

    name: str
    image: Image.Image
    info: ImageInfo
    warnings: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


@dataclass(frozen=True)
class EncodedImage:
    """One image as it goes into ``input.images`` of a worker-comfyui payload."""

    name: str
    data: bytes
    format: str
    size: tuple[int, int]
    original_size: tuple[int, int]
    notes: tuple[str, ...] = field(default=())

    @property
    def mime(self) -> str:
        return MIME[self.format]

    @property
    def downscaled(self) -> bool:
        return self.size != self.original_size

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"

    def as_input(self) -> dict[str, str]:
        """The ``{"name", "image"}`` element worker-comfyui expects in ``input.images``."""
        return {"name": self.name, "image": self.data_uri()}


def base64_length(n_bytes: int) -> int:
    """Characters of the base64 text of ``n_bytes`` bytes (padded): the 4/3 inflation."""
    return 4 * math.ceil(n_bytes / 3)


def body_bytes(body: object) -> int:
    """Size of a JSON body exactly as httpx serialises it (compact separators, UTF-8)."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def sniff_format(data: bytes) -> str | None:
    """PNG, JPEG or WEBP from the magic bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _describe_other(data: bytes) -> tuple[str, bool] | None:
    """(what the content is, whether it is a picture in another format) for well-known signatures."""
    for signature, what, is_picture in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return what, is_picture
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "a HEIC image (the iPhone photo format)", True
        if brand in (b"avif", b"avis"):
            return "an AVIF image", True
        return "a video (MP4 family)", False
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return "an SVG drawing", True
    return None


def _extension_warning(name: str, fmt: str) -> str | None:
    suffix = PurePath(name).suffix.lower()
    if not suffix or suffix in _EXTENSIONS_OF[fmt]:
        return None
    return (f"{name}: the file is a {fmt} image although its name ends in {suffix}; "
            f"it is read as {fmt}")


def probe(name: str, data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Identify the image and check its size from the header alone; raises :class:`ImageError`."""
    if not data:
        raise ImageError(name, f"this is not an image (0 bytes) — {UPLOAD_INSTEAD}")
    fmt = sniff_format(data)
    if fmt is None:
        other = _describe_other(data)
        if other and other[1]:
            raise ImageError(name, f"this is {other[0]}; only PNG, JPEG and WEBP are accepted — "
                                   f"convert it first")
        if other:
            raise ImageError(name, f"this is not an image (it is {other[0]}) — {UPLOAD_INSTEAD}")
        raise ImageError(name, f"this is not an image (its content is not PNG, JPEG or WEBP) — {UPLOAD_INSTEAD}")
    try:
        # The plugin class is used directly so that Pillow's own bomb check (which raises without
        # telling the dimensions above ~179 MP) does not pre-empt ours; nothing is decoded here.
        with _OPENERS[fmt](io.BytesIO(data)) as im:
            width, height = im.size
            mode = im.mode
            frames = int(getattr(im, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageError(name, f"the {fmt} data is damaged and cannot be read ({_short(exc)}) — "
                               f"export it again or upload another file") from None
    if width <= 0 or height <= 0:
        raise ImageError(name, f"the {fmt} header says {width}×{height} pixels, which is not a picture")
    if width * height > max_pixels:
        raise ImageError(name, f"{width}×{height} pixels is over the {max_pixels / 1e6:g}-megapixel "
                               f"limit — downscale it before uploading")
    return ImageInfo(name=name, format=fmt, width=width, height=height, mode=mode, frames=frames,
                     size_bytes=len(data))


def load_image(name: str, data: bytes, *, max_pixels: int = MAX_PIXELS) -> CheckedImage:
    """Validate, decode, rotate upright and flatten one image; raises :class:`ImageError`."""
    info = probe(name, data, max_pixels=max_pixels)
    warnings: list[str] = []
    if mismatch := _extension_warning(name, info.format):
        warnings.append(mismatch)
    if info.frames > 1:
        warnings.append(f"{name}: the {info.format} is animated ({info.frames} frames); "
                        f"only the first frame is used")
    try:
        with _OPENERS[info.format](io.BytesIO(data)) as im:
            im.load()
            try:
                upright = ImageOps.exif_transpose(im)
            except (ValueError, TypeError, SyntaxError, struct.error):
                upright = im.copy()
                warnings.append(f"{name}: its EXIF orientation tag is unreadable; the image is used "
                                f"as stored")
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageError(name, f"the {info.format} file is incomplete (truncated) — "
                                   f"upload the full file again") from None
        raise ImageError(name, f"the {info.format} data is damaged and cannot be decoded "
                               f"({_short(exc)}) — export it again or upload another file") from None
    except (SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageError(name, f"the {info.format} data is damaged and cannot be decoded "
                               f"({_short(exc)}) — export it again or upload another file") from None
    return CheckedImage(name=name, image=to_rgb(upright), info=info, warnings=tuple(warnings))


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited onto white (see the module docstring for why)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit greyscale PNGs would otherwise clip to white in convert("L").
        scale = 1 / 256 if im.mode.startswith("I;16") or im.mode == "I" else 255.0
        im = im.convert("F").point(lambda v: v * scale).convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def encode(image: Image.Image, fmt: str, *, quality: int = JPEG_QUALITY) -> bytes:
    """PNG (lossless) or JPEG bytes of an RGB image, without any metadata (no EXIF, no GPS)."""
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, "PNG", compress_level=6)
    elif fmt == "JPEG":
        image.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    else:
        raise ValueError(f"cannot encode as {fmt}; use PNG or JPEG")
    return buf.getvalue()


@dataclass
class _Candidate:
    stem: str
    source: CheckedImage
    level: int = 0
    encoded: EncodedImage | None = None

    def levels(self) -> int:
        """How many encodings are allowed: full size first, then 0.8× steps down to MIN_LONG_SIDE."""
        long_side = max(self.source.size)
        steps = 0
        while long_side * DOWNSCALE_STEP ** (steps + 1) >= MIN_LONG_SIDE:
            steps += 1
        return 1 + steps + (1 if self._png_first() else 0)

    def _png_first(self) -> bool:
        w, h = self.source.size
        return self.source.info.format == "PNG" and w * h <= PNG_MAX_PIXELS

    def encode_level(self) -> EncodedImage:
        level = self.level
        if self._png_first():
            if level == 0:
                return self._make("PNG", self.source.image)
            level -= 1
        im = self.source.image
        if level:
            factor = DOWNSCALE_STEP ** level
            w, h = im.size
            im = im.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.LANCZOS)
        return self._make("JPEG", im)

    def _make(self, fmt: str, im: Image.Image) -> EncodedImage:
        notes: list[str] = []
        if im.size != self.source.size:
            notes.append(f"{self.source.name}: downscaled from {_dims(self.source.size)} to {_dims(im.size)} "
                         f"to fit RunPod's request size limit")
        return EncodedImage(name=self.stem + EXTENSION[fmt], data=encode(im, fmt),
                            format=fmt, size=im.size, original_size=self.source.size, notes=tuple(notes))

    def entry_bytes(self) -> int:
        """Bytes this image adds to the body, computed without building the base64 text."""
        assert self.encoded is not None
        enc = self.encoded
        skeleton = body_bytes({"name": enc.name, "image": f"data:{enc.mime};base64,"})
        return skeleton + base64_length(len(enc.data)) + 1  # +1: the comma between list elements


def fit_images(images: Mapping[str, CheckedImage], *, reserved_bytes: int,
               limit: int = RUN_BODY_LIMIT, margin: int = BODY_MARGIN) -> dict[str, EncodedImage]:
    """Encode ``{stem: image}`` so that ``reserved_bytes`` + the images stay within ``limit``.

    ``reserved_bytes`` is the size of the body without the images (see :func:`body_bytes`). Each image
    starts lossless (PNG sources up to 4 MP) or as JPEG q92; while the body is too big, the image that
    currently takes the most room is re-encoded one step smaller (JPEG, 0.8× per step) until it fits.
    The name of each result is its stem plus the extension of the encoding actually used.
    Raises :class:`BodyTooLarge` when even the smallest allowed sizes do not fit.
    """
    budget = limit - margin - reserved_bytes
    if budget <= 0:
        raise BodyTooLarge(
            f"the job without its images is already {reserved_bytes:,} bytes, leaving no room under "
            f"RunPod's {limit:,}-byte request limit — simplify the workflow",
            needed=reserved_bytes + margin, limit=limit)
    candidates = [_Candidate(stem, image) for stem, image in images.items()]
    for c in candidates:
        c.encoded = c.encode_level()
    while (total := sum(c.entry_bytes() for c in candidates)) > budget:
        shrinkable = [c for c in candidates if c.level + 1 < c.levels()]
        if not shrinkable:
            count = f"the {len(candidates)} images need" if len(candidates) > 1 else "the image needs"
            raise BodyTooLarge(
                f"{count} {total + reserved_bytes + margin:,} bytes in the request even at the smallest "
                f"size allowed (longest side {MIN_LONG_SIDE} px, base64 adds a third), over RunPod's "
                f"{limit:,}-byte limit — send fewer or smaller images per job",
                needed=total + reserved_bytes + margin, limit=limit)
        biggest = max(shrinkable, key=lambda c: c.entry_bytes())
        biggest.level += 1
        biggest.encoded = biggest.encode_level()
    return {c.stem: c.encoded for c in candidates if c.encoded is not None}


def decode_base64_image(data: str) -> bytes:
    """The bytes of a base64 image as worker-comfyui accepts it (raw, or a ``data:`` URI)."""
    if data.startswith("data:"):
        data = data.split(",", 1)[1] if "," in data else ""
    return base64.b64decode(data, validate=False)


def _dims(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
