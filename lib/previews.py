"""Small copies of kept images for showing on a page, made once per image and size.

Streamlit turns a PNG without transparency into a JPEG on *every* run that shows it (28 ms for a
1024×1280 result, 24 of them on a Gallery page) and sends the browser a copy eight times the PNG's
size. A page shows the copy made here instead: already a JPEG at the size it is drawn, so Streamlit
passes its bytes through. Downloads still give the original file."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Stretched pictures, as wide as their column at its widest on a 2× screen.
GRID_WIDTH = 640       # a quarter of the page (Gallery, references)
HALF_WIDTH = 1024      # half the page (Face swap's before and after)
# Streamlit's own: a preview looks as the picture did when Streamlit encoded it, pixel for pixel beside one it
# still encodes itself (Face swap's Before, from the upload, and After, from a kept file).
JPEG_QUALITY = 90
# A picture is refused before it is decoded when it claims more pixels than this (a decompression bomb).
MAX_PIXELS = 64_000_000


def folder(data_dir: Path) -> Path:
    """Where the console keeps previews and thumbnails, in its data folder."""
    return data_dir / "previews"


def preview(path: Path, cache: Path, width: int) -> Path | None:
    """A copy of the image at `path` at most `width` pixels wide, kept in `cache` under a name that
    changes with the file; the original when it is small enough already or the copy cannot be written
    (a full disk shows the picture anyway); None when the file is not a readable image."""
    try:
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{width}".encode()).hexdigest()
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            # Streamlit passes a file through unchanged when it is no wider than drawn and already in the
            # format it would choose (PNG with transparency, else JPEG); a GIF is left whole (animation).
            if image.format == "GIF" or (image.width <= width and image.format == ("PNG" if has_alpha else "JPEG")):
                return path
            kept = cache / f"{key}.{'png' if has_alpha else 'jpg'}"
            if kept.exists():
                return kept
            image.draft("RGB", (width, width * 8))   # a JPEG decodes at a fraction of its size
            small = image.copy()
            small.thumbnail((width, small.height), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    # A mode JPEG cannot hold (Streamlit converts it) or a full disk: the picture is shown anyway, from the original.
    if not _keep_whole(kept, lambda partial: small.save(partial, "PNG", optimize=False) if has_alpha
                       else small.convert("RGB").save(partial, "JPEG", quality=JPEG_QUALITY)):
        return path
    return kept


_SHA256 = re.compile(r"[0-9a-f]{64}")


def thumbnail(sha256: str, make: Callable[[], bytes], cache: Path) -> bytes:
    """The thumbnail `make()` returns for the image whose bytes hash to `sha256`, made once and then read from
    `cache`: a training set's photos were read and shrunk again for every new session (0.5 s for 20 photos on
    the simulator; on a real volume each one is an S3 download). Named by the content's hash, a kept thumbnail
    never goes stale. A thumbnail that cannot be kept (a full disk) is made again next time."""
    if not _SHA256.fullmatch(sha256):   # read from a manifest on the volume: never let it name a path
        return make()
    kept = cache / f"{sha256}.thumb.jpg"
    with contextlib.suppress(OSError):
        return kept.read_bytes()
    data = make()
    _keep_whole(kept, lambda partial: partial.write_bytes(data))
    return data


def _keep_whole(kept: Path, write: Callable[[Path], object]) -> bool:
    """write() a partial file and put it at `kept` whole or not at all: another session (a thread of this
    process) may be reading it. False when it could not be written; no partial file is left."""
    partial = kept.with_name(f".{kept.name}.{uuid.uuid4().hex}.partial")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, kept)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):   # there may be no folder to remove it from
            partial.unlink(missing_ok=True)
        return False
    return True
