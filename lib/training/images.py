"""One training image: validated by its content, normalised, and measured once.

Everything the readiness checks need (size, hashes, sharpness, faces) is computed here when an
image enters a training set, so the checks themselves are cheap and a saved version can store the
measurements in its manifest instead of recomputing them on every load.
"""
from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.errors import ConsoleError

# JPEG, PNG and WebP are what AI Toolkit's loader reads (worker-contracts §3.3).
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
MAX_IMAGE_BYTES = 40 * 1024 * 1024
# 50 MP covers every camera a staff member is likely to upload; beyond it a file is far more
# likely a decompression bomb than a photo, so the pixel count is checked before decoding.
MAX_PIXELS = 50_000_000
# Measurements are stored in manifests; bump when an algorithm changes so old ones are redone.
ANALYSIS_VERSION = 1

_EXIF_ORIENTATION = 0x0112
_ANALYSIS_SHORT_SIDE = 512


class ImageRejected(ConsoleError, ValueError):
    """The bytes are not an image a training set can hold; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str          # "JPEG" | "PNG" | "WEBP"
    sha256: str
    size: int            # bytes
    phash: str           # 64-bit perceptual hash (DCT), hex
    dhash: str           # 64-bit difference hash, hex
    blur: float          # variance of the Laplacian at a fixed analysis size; low = blurry
    faces: int           # frontal faces found by OpenCV's Haar cascade
    analysis_version: int = ANALYSIS_VERSION

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ImageInfo:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclass(frozen=True)
class LoadedImage:
    """An accepted image: the bytes to store (re-encoded only when EXIF rotated it) and its info."""

    data: bytes
    extension: str
    info: ImageInfo


def load_image(data: bytes, name: str = "image") -> LoadedImage:
    """Validate `data` by content and measure it; raises ImageRejected with a reason naming `name`."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(f"{name}: {len(data) / 1e6:.0f} MB is larger than the "
                            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB limit per image")
    image = _open_checked(data, name)
    fmt = image.format
    assert fmt is not None  # _open_checked opens only the FORMATS
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation not in (1, None):
        # Trainers and viewers disagree on honouring EXIF rotation; baking it into the pixels
        # makes what staff see in the console exactly what the trainer gets.
        image = ImageOps.exif_transpose(image)
        data = _encode(image, fmt)
    rgb = image.convert("RGB")
    gray = np.asarray(rgb.convert("L"))
    info = ImageInfo(
        width=rgb.width,
        height=rgb.height,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        phash=phash(rgb),
        dhash=dhash(rgb),
        blur=round(blur_score(gray), 2),
        faces=count_faces(gray),
    )
    return LoadedImage(data=data, extension=FORMATS[fmt], info=info)


def _open_checked(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=list(FORMATS))
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ImageRejected(f"{name}: {width}×{height} has more than "
                                    f"{MAX_PIXELS / 1e6:.0f} million pixels")
            if getattr(probe, "n_frames", 1) > 1:
                raise ImageRejected(f"{name}: animated images cannot be used for training")
            probe.verify()
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            image.load()
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected(f"{name}: not a JPEG, PNG or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(f"{name}: too many pixels (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"{name}: the image data is damaged ({exc})") from None
    if image.width < 1 or image.height < 1:
        raise ImageRejected(f"{name}: the image is empty")
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=95)
    elif fmt == "WEBP":
        image.save(out, "WEBP", lossless=True)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def make_thumbnail(data: bytes, size: int = 256) -> bytes:
    image: Image.Image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    image.draft("RGB", (size, size))   # JPEG: decode at reduced scale, much faster
    image = image.convert("RGB")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _bits_to_hex(bits: np.ndarray) -> str:
    value = 0
    for bit in bits.flatten():
        value = (value << 1) | int(bool(bit))
    return f"{value:016x}"


def dhash(image: Image.Image) -> str:
    """Difference hash: is each pixel brighter than its right neighbour, on a 9×8 thumbnail."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _bits_to_hex(small[:, 1:] > small[:, :-1])


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)


def phash(image: Image.Image) -> str:
    """Perceptual hash: low-frequency DCT coefficients of a 32×32 grey thumbnail vs their median."""
    small = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    coeffs = (_DCT32 @ small @ _DCT32.T)[:8, :8]
    # The DC term only says how bright the image is; leaving it out of the median keeps
    # exposure changes from flipping the other bits.
    median = np.median(coeffs.flatten()[1:])
    return _bits_to_hex(coeffs > median)


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _analysis_gray(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    scale = _ANALYSIS_SHORT_SIDE / min(h, w)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    return gray


def blur_score(gray: np.ndarray) -> float:
    """Variance of the Laplacian; measured at a fixed short side so photos of any size compare."""
    return float(cv2.Laplacian(_analysis_gray(gray), cv2.CV_64F).var())


_cascades = threading.local()


def _face_cascade() -> cv2.CascadeClassifier:
    # A CascadeClassifier is not safe to share between threads (Streamlit runs sessions in
    # threads), so each thread gets its own.
    cascade = getattr(_cascades, "face", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades  # type: ignore[attr-defined]  # opencv's stubs omit cv2.data
                                       + "haarcascade_frontalface_default.xml")
        if cascade.empty():
            raise RuntimeError("OpenCV's Haar face cascade could not be loaded from cv2.data.haarcascades")
        _cascades.face = cascade
    return cascade


def count_faces(gray: np.ndarray) -> int:
    small = _analysis_gray(gray)
    min_side = max(24, min(small.shape) // 10)
    faces = _face_cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=6,
                                             minSize=(min_side, min_side))
    return int(len(faces))
