"""Small copies of kept images for showing on a page, made once per image and size.

Streamlit turns a PNG without transparency into a JPEG on *every* run that shows it (28 ms for a
1024×1280 result, 24 of them on a Gallery page) and sends the browser a copy eight times the PNG's
size. A page shows the copy made here instead: already a JPEG at the size it is drawn, so Streamlit
passes its bytes through. Downloads still give the original file."""
from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
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
    partial = kept.with_name(f".{kept.name}.{uuid.uuid4().hex}.partial")   # sessions are threads of one process
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if has_alpha:
            small.save(partial, "PNG", optimize=False)
        else:
            small.convert("RGB").save(partial, "JPEG", quality=JPEG_QUALITY)
        os.replace(partial, kept)   # whole or not at all: another session may be reading it
    except (OSError, ValueError):   # a full disk, or a pixel mode JPEG cannot hold: Streamlit converts it
        with contextlib.suppress(OSError):   # there may be no folder to remove it from
            partial.unlink(missing_ok=True)
        return path
    return kept
