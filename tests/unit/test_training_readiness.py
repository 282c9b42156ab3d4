"""Readiness checks and image validation on images generated here (PIL/numpy, skimage's astronaut)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from skimage import data

from lib.training import images as images_mod
from lib.training.images import ImageRejected, hamming, load_image
from lib.training.readiness import BLUR_THRESHOLD, ERROR, WARNING, check_set, has_trigger

ASTRONAUT = Image.fromarray(data.astronaut())
HEAD = ASTRONAUT.crop((60, 0, 380, 320))
# Seeds whose generated portrait shows exactly one face to the Haar cascade (the busy
# rectangles behind some other seeds trigger a second, false detection).
ONE_FACE_SEEDS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21]


def encode(image: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def portrait(seed: int, size: int = 1024) -> Image.Image:
    """A sharp 'photo': one face on a busy background that differs per seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(x) for x in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(30, 250))
        draw.rectangle((x, y, x + r, y + r // 2), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    s = int(rng.integers(420 * size // 1024, 600 * size // 1024))
    x, y = (int(v) for v in rng.integers(0, size - s, 2))
    image.paste(HEAD.resize((s, s)), (x, y))
    return image


def info(image: Image.Image, fmt: str = "JPEG"):
    return load_image(encode(image, fmt, **({"quality": 92} if fmt == "JPEG" else {})), "img").info


@pytest.fixture(scope="module")
def clean_set():
    return {f"img_{i:02d}.jpg": info(portrait(seed)) for i, seed in enumerate(ONE_FACE_SEEDS)}


@pytest.fixture
def good_set(clean_set):
    """(infos, captions) of 20 good portraits; each test gets its own copies to change."""
    return dict(clean_set), {name: "ava_tok, a portrait photo" for name in clean_set}


def codes(report, name=None):
    found = report.per_image.get(name, ()) if name else report.findings
    return sorted({f.code for f in found})


def test_a_clean_set_of_twenty_portraits_has_no_findings(good_set):
    infos, captions = good_set
    report = check_set(infos, captions, "ava_tok")
    assert report.findings == (), [f.message for f in report.findings]
    assert report.can_train()
    assert report.summary() == "20 images, no problems found"


def test_face_count_on_skimage_astronaut():
    assert info(ASTRONAUT, "PNG").faces == 1
    plain = Image.new("RGB", (800, 800), (120, 140, 160))
    assert info(plain, "PNG").faces == 0


def test_sharp_vs_blurred(good_set):
    sharp = info(portrait(40))
    blurred = info(portrait(40).filter(ImageFilter.GaussianBlur(6)))
    assert sharp.blur > 4 * BLUR_THRESHOLD
    assert blurred.blur < BLUR_THRESHOLD
    infos, captions = good_set
    infos["img_00.jpg"] = blurred
    report = check_set(infos, captions, "ava_tok")
    assert codes(report, "img_00.jpg") == ["blurry"]
    assert report.per_image["img_00.jpg"][0].severity == WARNING
    assert not report.errors and not report.can_train()
    assert report.can_train(acknowledged=[f.key for f in report.warnings])


def test_resolution_hard_limit_and_warning(good_set):
    infos, captions = good_set
    infos["img_00.jpg"] = info(portrait(0, size=448))
    infos["img_01.jpg"] = info(portrait(1, size=768))
    report = check_set(infos, captions, "ava_tok")
    assert codes(report, "img_00.jpg") == ["too_small"]
    assert report.per_image["img_00.jpg"][0].severity == ERROR
    assert codes(report, "img_01.jpg") == ["low_resolution"]
    # An error blocks training whatever was acknowledged.
    assert not report.can_train(acknowledged=[f.key for f in report.findings])


def test_exact_duplicates_are_an_error_and_near_duplicates_a_warning(good_set):
    infos, captions = good_set
    base = portrait(3)
    infos["copy.jpg"] = info(base)
    infos["img_03.jpg"] = info(base)
    captions["copy.jpg"] = "ava_tok photo"
    tweaked = ImageEnhance.Brightness(base.crop((12, 12, 1012, 1012)).resize((1024, 1024))).enhance(1.08)
    infos["near.jpg"] = info(tweaked)
    captions["near.jpg"] = "ava_tok photo"
    report = check_set(infos, captions, "ava_tok")
    dup = [f for f in report.findings if f.code == "duplicate"]
    assert len(dup) == 1 and dup[0].severity == ERROR
    assert set(dup[0].images) == {"copy.jpg", "img_03.jpg"}
    near = [f for f in report.findings if f.code == "near_duplicate"]
    assert len(near) == 1 and near[0].severity == WARNING
    assert "near.jpg" in near[0].images
    # Different portraits are far apart on both hashes.
    a, b = info(portrait(4)), info(portrait(5))
    assert hamming(a.phash, b.phash) > 12 and hamming(a.dhash, b.dhash) > 12


def test_captions_missing_or_without_trigger(good_set):
    infos, captions = good_set
    captions["img_00.jpg"] = None
    captions["img_01.jpg"] = "a woman smiling"
    captions["img_02.jpg"] = "[trigger] smiling"
    report = check_set(infos, captions, "ava_tok")
    assert codes(report, "img_00.jpg") == ["missing_caption"]
    assert codes(report, "img_01.jpg") == ["caption_without_trigger"]
    assert codes(report, "img_02.jpg") == []


def test_image_count_recommendation(good_set):
    infos, captions = good_set
    few = dict(list(infos.items())[:5])
    assert codes(check_set(few, captions, "ava_tok")) == ["few_images"]
    empty = check_set({}, {}, "ava_tok")
    assert codes(empty) == ["no_images"] and empty.errors


def test_faces_warnings(good_set):
    infos, captions = good_set
    infos["img_00.jpg"] = info(Image.new("RGB", (1024, 1024), (30, 90, 200)).filter(ImageFilter.DETAIL))
    two = Image.new("RGB", (1600, 1024), (200, 200, 200))
    two.paste(HEAD.resize((600, 600)), (80, 200))
    two.paste(HEAD.resize((600, 600)), (900, 200))
    infos["img_01.jpg"] = info(two)
    report = check_set(infos, captions, "ava_tok")
    assert "no_face" in codes(report, "img_00.jpg")
    assert codes(report, "img_01.jpg") == ["several_faces"]


def test_has_trigger_matches_whole_words_only():
    assert has_trigger("photo of AVA_TOK smiling", "ava_tok")
    assert not has_trigger("photo of ava_tokyo", "ava_tok")


# --- validation by content --------------------------------------------------------------------


def test_exif_orientation_is_baked_into_the_pixels():
    image = Image.new("RGB", (1200, 800), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90° clockwise to display
    loaded = load_image(encode(image, "JPEG", exif=exif), "rotated.jpg")
    assert (loaded.info.width, loaded.info.height) == (800, 1200)
    stored = Image.open(io.BytesIO(loaded.data))
    assert stored.size == (800, 1200)
    assert stored.getexif().get(0x0112, 1) == 1


def test_unrotated_images_keep_their_bytes():
    data = encode(portrait(2, size=640), "PNG")
    loaded = load_image(data, "x.png")
    assert loaded.data == data and loaded.extension == ".png"


@pytest.mark.parametrize("payload, reason", [
    (b"just text, not an image", "not a JPEG, PNG or WebP"),
    (encode(Image.new("RGB", (64, 64)), "GIF"), "not a JPEG, PNG or WebP"),
    (encode(Image.new("RGB", (900, 900)), "PNG")[:200], "damaged"),
])
def test_non_images_and_damaged_files_are_rejected(payload, reason):
    with pytest.raises(ImageRejected, match=reason):
        load_image(payload, "bad.png")


def test_pixel_bomb_guard_checks_before_decoding(monkeypatch):
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 1000 * 1000)
    with pytest.raises(ImageRejected, match="million pixels"):
        load_image(encode(Image.new("L", (1200, 1000)), "PNG"), "huge.png")


def test_animated_images_are_rejected():
    frames = [Image.new("RGB", (600, 600), c) for c in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageRejected, match="animated"):
        load_image(out.getvalue(), "anim.png")
