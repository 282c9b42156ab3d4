"""AppTest: the Gallery draws each kept image from a preview at the size it is shown, and names a damaged
file instead of failing the page."""
from __future__ import annotations

import io
import uuid

import numpy as np
from PIL import Image
from skimage import data as skdata

from lib.jobstate import JobState


def kept_image(console, name: str, data: bytes, character: str) -> str:
    store = console.store
    key = uuid.uuid4().hex
    record = store.create(role="image", endpoint_id="e", kind="generate", user="ops@example.com", input={"k": key},
                          idempotency_key=key, meta={"character": character, "model": "z-image", "seed": 1})
    store.mark_submitted(record.local_id, f"rp-{key}", JobState.IN_QUEUE.value)
    store.update_from_runpod(record.local_id, status=JobState.COMPLETED.value, delay_ms=1, execution_ms=1,
                             worker_id="w", retries=0, output={}, error=None)
    store.save_output(record.local_id, name, data, "image/png")
    return record.local_id


def test_images_come_from_previews_and_a_damaged_one_is_named(open_page, console):
    character = f"pic{uuid.uuid4().hex[:6]}"
    png = io.BytesIO()
    Image.fromarray(np.kron(skdata.astronaut(), np.ones((2, 2, 1), dtype=np.uint8))).save(png, "PNG")
    kept_image(console, "portrait_00001_.png", png.getvalue(), character)
    kept_image(console, "damaged_00001_.png", b"\x89PNG\r\n\x1a\n truncated", character)

    at = open_page("pages/gallery.py")
    at.selectbox(key="gal.character").set_value(character).run()
    assert not at.exception, at.exception
    assert any("damaged_00001_.png is not a readable image" in w.value for w in at.warning)
    previews = list((console.data_dir / "previews").glob("*.jpg"))
    assert previews, "the 1024 px picture was drawn from a preview"
    assert max(Image.open(p).width for p in previews) <= 640
    # The download is still the original file.
    assert any(b.proto.label == "Download" for b in at.get("download_button"))


def test_the_grid_is_one_element_and_the_actions_are_for_the_chosen_picture(open_page, console):
    character = f"grid{uuid.uuid4().hex[:6]}"
    png = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(png, "PNG")
    uids = {f"{kept_image(console, name, png.getvalue(), character)}.{name}" for name in ("one_1_.png", "two_1_.png")}

    at = open_page("pages/gallery.py")
    at.selectbox(key="gal.character").set_value(character).run()
    # Every picture in one image element (24 cards of several elements each took the browser 0.3 s to redraw),
    # numbered in its caption; one download, the chosen picture's file, not one read per picture.
    (grid,) = at.image
    # (captions are Markdown-escaped: the browser shows "#1")
    assert [caption.split(" · ")[0] for caption in grid.captions] == [r"\#1", r"\#2"]
    (download,) = at.get("download_button")
    chosen = at.selectbox(key="gal.picked")
    assert set(chosen.options) == {f"#{n} · z-image · seed 1 · no LoRA" for n in (1, 2)}
    other = (uids - {chosen.value}).pop()
    assert download.proto.id and at.button(key=f"gal.rerun.{chosen.value}")
    chosen.set_value(other).run()
    assert at.selectbox(key="gal.picked").value == other
    assert at.button(key=f"gal.vary.{other}") and at.button(key=f"gal.open.{other}")
    # A new picture arrives (a re-run finished): the numbers move on, the chosen picture stays chosen.
    kept_image(console, "three_1_.png", png.getvalue(), character)
    at.run()
    assert len(at.selectbox(key="gal.picked").options) == 3 and at.selectbox(key="gal.picked").value == other
    assert not at.exception
