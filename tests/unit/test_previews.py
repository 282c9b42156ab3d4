"""Previews of kept images (lib/previews.py): made once per image and size, at the size drawn, in the
format Streamlit passes through; the original when nothing is gained or the copy cannot be written."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lib import previews


def save(path, image: Image.Image, fmt: str = "PNG"):
    image.save(path, fmt)
    return path


@pytest.fixture
def photo():
    """The astronaut, 1024×1024 RGB: the size of a generated picture."""
    return Image.fromarray(np.kron(skdata.astronaut(), np.ones((2, 2, 1), dtype=np.uint8)))


def test_a_large_png_becomes_a_jpeg_as_wide_as_drawn_made_once(tmp_path, photo):
    original = save(tmp_path / "result.png", photo)
    cache = tmp_path / "cache"
    small = previews.preview(original, cache, 640)
    assert small is not None and small.parent == cache
    with Image.open(small) as image:
        assert image.format == "JPEG" and image.size == (640, 640)
    made = small.stat().st_mtime_ns
    assert previews.preview(original, cache, 640) == small and small.stat().st_mtime_ns == made
    assert previews.preview(original, cache, 320) != small   # another size, another copy
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")]


def test_a_rewritten_image_gets_a_new_preview(tmp_path, photo):
    original = save(tmp_path / "result.png", photo)
    first = previews.preview(original, tmp_path / "cache", 640)
    save(original, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    os.utime(original, ns=(1, 1))   # another mtime even on a coarse clock
    second = previews.preview(original, tmp_path / "cache", 640)
    assert second != first
    with Image.open(first) as a, Image.open(second) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_a_small_jpeg_is_shown_as_it_is(tmp_path, photo):
    original = save(tmp_path / "small.jpg", photo.resize((300, 300)), "JPEG")
    assert previews.preview(original, tmp_path / "cache", 640) == original
    assert not (tmp_path / "cache").exists()


def test_transparency_is_kept_in_a_png(tmp_path, photo):
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    small = previews.preview(save(tmp_path / "cutout.png", rgba), tmp_path / "cache", 512)
    with Image.open(small) as image:
        assert image.format == "PNG" and image.mode == "RGBA" and image.width == 512
        assert image.getpixel((10, 10))[3] == 128


@pytest.mark.parametrize("content", [b"", b"not a picture", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_an_unreadable_file_has_no_preview(tmp_path, content):
    broken = tmp_path / "broken.png"
    broken.write_bytes(content)
    assert previews.preview(broken, tmp_path / "cache", 640) is None
    assert previews.preview(tmp_path / "gone.png", tmp_path / "cache", 640) is None


def test_an_image_claiming_too_many_pixels_is_not_decoded(tmp_path):
    """A PNG whose header says 20,000 × 20,000 (400 MP) is refused from its header alone."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    data = bytearray(png.getvalue())
    header = b"IHDR" + struct.pack(">II", 20_000, 20_000) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bytes(data))
    assert previews.preview(bomb, tmp_path / "cache", 640) is None


def test_a_full_disk_shows_the_original_and_leaves_no_partial_file(tmp_path, photo, monkeypatch):
    original = save(tmp_path / "result.png", photo)
    cache = tmp_path / "cache"
    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)   # the bytes land, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert previews.preview(original, cache, 640) == original
    assert list(cache.iterdir()) == []


def test_an_unwritable_cache_shows_the_original(tmp_path, photo):
    original = save(tmp_path / "result.png", photo)
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the folder should be")
    assert previews.preview(original, blocked, 640) == original


def test_a_thumbnail_is_made_once_per_content(tmp_path):
    made = []

    def make():
        made.append(1)
        return b"jpeg bytes"

    sha = "ab" * 32
    assert previews.thumbnail(sha, make, tmp_path / "cache") == b"jpeg bytes"
    assert previews.thumbnail(sha, make, tmp_path / "cache") == b"jpeg bytes"
    assert len(made) == 1


@pytest.mark.parametrize("claimed", ["../../escape", "AB" * 32, "ab" * 31, "", "ab" * 32 + "/x"])
def test_a_hash_that_is_not_one_never_names_a_file(tmp_path, claimed):
    # The hash comes from a manifest on the shared volume, which anyone with volume access can edit.
    cache = tmp_path / "deep" / "cache"
    assert previews.thumbnail(claimed, lambda: b"made", cache) == b"made"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_thumbnail_that_cannot_be_kept_is_still_shown(tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the folder should be")
    assert previews.thumbnail("cd" * 32, lambda: b"made", blocked) == b"made"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
