"""Image inputs: validated by content, upright, opaque, and fitted under RunPod's /run body limit."""
from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lib.images import (
    MAX_PIXELS,
    MIN_LONG_SIDE,
    RUN_BODY_LIMIT,
    BodyTooLarge,
    ImageError,
    base64_length,
    body_bytes,
    decode_base64_image,
    fit_images,
    load_image,
    probe,
)
from tests.support.fakes import jpeg, png


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bomb_png(width: int, height: int) -> bytes:
    """A fully valid 1-bit greyscale PNG of width×height white pixels, a few hundred KB on disk."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    block = row * 1000
    idat = b"".join(comp.compress(block) for _ in range(height // 1000)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def noise_photo() -> Image.Image:
    """A 6000×4000 photo-sized image that compresses badly, like a noisy phone picture."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 255, (1000, 1500, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((6000, 4000), Image.Resampling.NEAREST)


def test_zero_byte_file_is_named_and_refused():
    with pytest.raises(ImageError) as err:
        load_image("face.png", b"")
    assert str(err.value) == "face.png: this is not an image (0 bytes) — upload a PNG, JPEG or WEBP file"


def test_bomb_header_is_refused_with_its_dimensions_before_decoding():
    bomb = _bomb_png(30000, 30000)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as err:
            load_image("big.png", bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith("big.png: 30000×30000 pixels is over the 40-megapixel limit")
    # Decoding would need 112 MB for the 1-bit pixels (2.7 GB as RGB); the header costs almost nothing.
    assert peak < 20_000_000


def test_header_only_png_claiming_huge_size_is_refused_by_probe():
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    fake = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")
    with pytest.raises(ImageError, match=r"30000×30000 pixels is over the 40-megapixel limit"):
        probe("big.png", fake)


def test_the_pixel_limit_is_ours_and_adjustable(astronaut):
    assert MAX_PIXELS == 40_000_000
    with pytest.raises(ImageError, match=r"512×512 pixels is over the 0.1-megapixel limit"):
        load_image("a.png", png(astronaut), max_pixels=100_000)


def test_corrupt_png_is_reported_as_damaged(astronaut):
    good = png(astronaut)
    corrupt = good[:16] + b"\x00" * 200
    with pytest.raises(ImageError) as err:
        load_image("face.png", corrupt)
    assert str(err.value).startswith("face.png: the PNG data is damaged")


def test_truncated_jpeg_says_incomplete(astronaut):
    whole = jpeg(astronaut)
    with pytest.raises(ImageError) as err:
        load_image("face.jpg", whole[: len(whole) // 2])
    assert str(err.value) == "face.jpg: the JPEG file is incomplete (truncated) — upload the full file again"


def test_text_with_image_extension_is_not_an_image():
    with pytest.raises(ImageError) as err:
        load_image("notes.png", b"shopping list: eggs, milk\n" * 5)
    assert str(err.value) == "notes.png: this is not an image (its content is not PNG, JPEG or WEBP) — upload a PNG, JPEG or WEBP file"


@pytest.mark.parametrize("content, expected", [
    (b"GIF89a" + b"\x00" * 40, "anim.png: this is a GIF image; only PNG, JPEG and WEBP are accepted"),
    (b"%PDF-1.7\n" + b"\x00" * 40, "anim.png: this is not an image (it is a PDF document)"),
    (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "anim.png: this is a HEIC image (the iPhone photo format)"),
])
def test_other_formats_are_named(content, expected):
    with pytest.raises(ImageError) as err:
        load_image("anim.png", content)
    assert str(err.value).startswith(expected)


def test_wrong_extension_is_detected_and_said_but_the_content_wins(astronaut):
    checked = load_image("face.png", jpeg(astronaut))
    assert checked.info.format == "JPEG"
    assert checked.warnings == ("face.png: the file is a JPEG image although its name ends in .png; "
                                "it is read as JPEG",)
    assert load_image("face.jpeg", jpeg(astronaut)).warnings == ()
    assert load_image("face", png(astronaut)).warnings == ()


def test_webp_is_accepted(astronaut):
    buf = io.BytesIO()
    astronaut.save(buf, "WEBP", quality=80)
    checked = load_image("face.webp", buf.getvalue())
    assert checked.info.format == "WEBP" and checked.size == (512, 512) and checked.image.mode == "RGB"


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    for x in range(4):
        for y in range(4):
            im.putpixel((x, y), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    checked = load_image("portrait.jpg", jpeg(im, exif=exif.tobytes(), quality=95))
    assert checked.size == (20, 40)
    # The red top-left corner of the stored image ends up top-right once upright.
    r, g, b = checked.image.getpixel((18, 1))
    assert r > 200 and b < 60


def test_alpha_is_flattened_onto_white():
    im = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # fully transparent black
    im.putpixel((5, 5), (255, 0, 0, 255))
    checked = load_image("cutout.png", png(im))
    assert checked.image.mode == "RGB"
    assert checked.image.getpixel((0, 0)) == (255, 255, 255)
    assert checked.image.getpixel((5, 5)) == (255, 0, 0)


def test_palette_transparency_and_16_bit_grey_are_normalised():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    pal.putpixel((1, 1), 1)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    checked = load_image("pal.png", buf.getvalue())
    assert checked.image.getpixel((0, 0)) == (255, 255, 255)
    assert checked.image.getpixel((1, 1)) == (10, 200, 10)

    grey16 = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    checked = load_image("depth.png", png(grey16))
    assert checked.image.mode == "RGB"
    assert 120 <= checked.image.getpixel((0, 0))[0] <= 135


def test_small_images_are_sent_lossless_at_full_size(astronaut):
    checked = load_image("face.png", png(astronaut))
    fitted = fit_images({"job1_face": checked}, reserved_bytes=2_000)
    enc = fitted["job1_face"]
    assert enc.name == "job1_face.png" and enc.format == "PNG" and not enc.downscaled
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(enc.data))), np.asarray(astronaut))
    assert enc.as_input()["image"].startswith("data:image/png;base64,")
    assert decode_base64_image(enc.as_input()["image"]) == enc.data


def test_downscaling_keeps_the_run_body_under_10_mb(noise_photo, astronaut):
    big = load_image("phone.jpg", jpeg(noise_photo, quality=95))
    assert len(jpeg(noise_photo, quality=95)) * 4 / 3 > RUN_BODY_LIMIT  # it would not fit as it is
    face = load_image("face.png", png(astronaut))
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "x"}}, "pad": "w" * 50_000}
    reserved = body_bytes({"input": {"workflow": workflow, "images": []}})
    fitted = fit_images({"t": big, "f": face}, reserved_bytes=reserved)
    body = {"input": {"workflow": workflow, "images": [e.as_input() for e in fitted.values()]}}
    assert body_bytes(body) <= RUN_BODY_LIMIT
    assert fitted["t"].downscaled and fitted["t"].format == "JPEG" and fitted["t"].name == "t.jpg"
    w, h = fitted["t"].size
    assert abs(w / h - 1.5) < 0.01 and max(w, h) >= MIN_LONG_SIDE
    assert fitted["t"].notes == (f"phone.jpg: downscaled from 6000×4000 to {w}×{h} to fit RunPod's "
                                 f"request size limit",)
    assert not fitted["f"].downscaled  # the biggest image gives way first


def test_refuses_with_sizes_when_even_the_smallest_does_not_fit():
    rng = np.random.default_rng(3)
    tile = Image.fromarray(rng.integers(0, 255, (MIN_LONG_SIDE, MIN_LONG_SIDE, 3), dtype=np.uint8))
    checked = load_image("noise.png", png(tile))
    with pytest.raises(BodyTooLarge) as err:
        fit_images({f"img{i}": checked for i in range(40)}, reserved_bytes=1_000)
    message = str(err.value)
    assert message.startswith("the 40 images need ")
    assert "over RunPod's 10,000,000-byte limit" in message and "base64 adds a third" in message
    assert err.value.needed > RUN_BODY_LIMIT


def test_refuses_when_the_workflow_alone_fills_the_body(astronaut):
    checked = load_image("face.png", png(astronaut))
    with pytest.raises(BodyTooLarge, match="without its images is already 9,999,000 bytes"):
        fit_images({"f": checked}, reserved_bytes=9_999_000)


def test_encoded_images_carry_no_exif(astronaut):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    checked = load_image("p.jpg", jpeg(astronaut, exif=exif.tobytes()))
    enc = fit_images({"p": checked}, reserved_bytes=0)["p"]
    assert b"PhoneMaker" not in enc.data


def test_base64_length_matches_reality():
    import base64
    for n in (0, 1, 2, 3, 4, 100, 1001):
        assert base64_length(n) == len(base64.b64encode(b"x" * n))

