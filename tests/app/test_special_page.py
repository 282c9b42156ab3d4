"""AppTest: the Face swap & character sheets page on the in-process simulator (the `console` fixture).

The page runs directly as a script, like the Generate page's tests: it only needs deps.services()
(patched by the autouse fixture in conftest.py) and the signed-in user in session state.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest

from lib import special as sp
from lib.auth import LOCAL_OPERATOR, User
from lib.localpod.comfy.faceswap_cv import detect_faces
from tests.support.fakes import jpeg, png

ROOT = Path(__file__).resolve().parents[2]


def open_page(user=LOCAL_OPERATOR) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/special.py"), default_timeout=30)
    at.session_state["auth.user"] = user
    at.run()
    assert not at.exception, at.exception
    return at


def photo_with_face(background: np.ndarray, size: int, at: tuple[int, int]) -> np.ndarray:
    canvas = background.copy()
    y, x = at
    canvas[y:y + size, x:x + size] = cv2.resize(skdata.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    return canvas


def test_page_states_the_licence_and_waits_for_photos():
    at = open_page()
    assert [t.label for t in at.tabs] == ["Face swap", "Character sheet", "Reference image"]
    licence = at.warning[0].value
    assert "inswapper_128" in licence and "buffalo_l" in licence and "non-commercial research only" in licence
    assert at.button(key="fs.go").disabled
    assert "the largest face of the source photo onto the largest face of each target" in at.caption[0].value
    assert "ava_v1.safetensors" in at.selectbox(key="sh.lora").options


def test_viewer_cannot_submit():
    at = open_page(User("v@example.com", "viewer"))
    assert not at.get("file_uploader")  # nobody below staff uploads
    assert at.button(key="fs.go").disabled and at.button(key="sh.go").disabled


def test_face_onto_two_targets_before_and_after(console):
    face = np.ascontiguousarray(skdata.astronaut()[:, ::-1])  # a mirrored face: visibly not the target's
    beach = photo_with_face(skdata.coffee(), 300, (40, 240))
    office = photo_with_face(np.full((480, 640, 3), 180, np.uint8), 260, (120, 60))
    at = open_page()
    at.file_uploader(key="fs.source").set_value(("me.png", png(face), "image/png"))
    at.file_uploader(key="fs.targets").set_value([("beach.jpg", jpeg(beach, quality=92), "image/jpeg"),
                                                  ("office.png", png(office), "image/png")])
    at.run()
    at.button(key="fs.go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    batch = at.session_state["fs.batch"]
    records = console.store.list(group=batch)
    assert len(records) == 2 and {r.kind for r in records} == {"faceswap"}
    console.tracker.wait_for([r.local_id for r in records], timeout_s=60)
    at.run()
    assert not at.exception
    views = sp.batch_results(console.store, batch)
    assert [v.status for v in views] == ["COMPLETED", "COMPLETED"]
    for view, original in zip(views, (beach, office), strict=False):
        after = np.asarray(Image.open(view.after).convert("RGB"))
        box = detect_faces(original)[0]
        region = (slice(box.y, box.y + box.h), slice(box.x, box.x + box.w))
        assert np.abs(after[region].astype(int) - original[region].astype(int)).mean() > 10
    shown = sum(len(img.value) if isinstance(img.value, list) else 1 for img in at.image)
    assert shown == 3 + 4  # a preview of each upload with its faces boxed; before and after for each target
    previews = [c for img in at.image for c in (img.captions if isinstance(img.value, list) else [img.caption])
                if c and "numbered left to right" in c]
    assert len(previews) == 3
    assert [m.value for m in at.markdown if "beach.jpg" in m.value or "office.png" in m.value] == [
        ":material/check_circle: **beach.jpg** · completed", ":material/check_circle: **office.png** · completed"]
    at.button(key="fs.go").click().run()  # the same form again: nothing new is sent
    assert at.session_state["fs.batch"] == batch and len(console.store.list(group=batch)) == 2
    assert any("already sent" in i.value for i in at.info)


def test_hostile_uploads_are_refused_with_their_names(console):
    at = open_page()
    at.file_uploader(key="fs.source").set_value(("face.png", b"", "image/png"))
    at.file_uploader(key="fs.targets").set_value([("big.png", b"GIF89a" + b"\x00" * 32, "image/png")])
    at.run()
    at.button(key="fs.go").click().run()
    message = at.error[0].value
    assert message.startswith("Nothing was sent:")
    assert "face.png: this is not an image (0 bytes)" in message
    assert "big.png: this is a GIF image; only PNG, JPEG and WEBP are accepted" in message
    assert "fs.batch" not in at.session_state


def test_character_sheet_with_labelled_views(console):
    at = open_page()
    at.selectbox(key="sh.lora").set_value("ava_v1.safetensors").run()
    assert at.text_input(key="sh.trigger.ava_v1.safetensors").value == "ava"
    at.multiselect(key="sh.panels").set_value(["front", "three_quarter", "profile", "back", "smiling"]).run()
    at.button(key="sh.go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    sheet_id = at.session_state["sh.batch"]
    records = console.store.list(group=sheet_id)
    assert sorted(r.meta["panel"] for r in records) == ["back", "front", "profile", "smiling", "three_quarter"]
    console.tracker.wait_for([r.local_id for r in records], timeout_s=90)
    at.run()
    assert not at.exception
    assert "5 of 5 panels ready" in at.get("progress")[0].proto.text
    download = at.get("download_button")[0]
    assert not download.proto.disabled
    kept = console.data_dir / "sheets" / f"{sheet_id}.png"
    layout = sp.sheet_layout(kept.read_bytes())
    assert [p.label for p in layout] == ["Front", "Three-quarter", "Profile", "Back", "Smiling"]
    assert any(str(kept) in c.value for c in at.caption)


def test_pose_guidance_shows_the_drawn_skeleton_of_every_chosen_panel():
    at = open_page()
    assert len(at.image) == 0
    at.toggle(key="sh.posed").set_value(True).run()
    assert not at.exception and len(at.image) == len(sp.PANELS)
    at.multiselect(key="sh.panels").set_value(["front", "smiling"]).run()
    assert len(at.image) == 2


def test_reference_tab_waits_for_an_image_and_a_prompt_and_warns_about_faceid():
    at = open_page()
    assert at.button(key="ref.go").disabled
    at.radio(key="ref.mode").set_value("faceid").run()
    assert any("non-commercial research only" in w.value for w in at.warning)


def test_face_swap_options_are_drawn_only_while_open_and_kept_while_closed():
    at = open_page()
    assert not [s for s in at.selectbox if s.key == "fs.restore"]   # closed: its seven widgets are not drawn
    at.session_state["fs.options"] = True   # the user opens "Options"
    at.run()
    at.selectbox(key="fs.restore").set_value("none").run()
    at.multiselect(key="fs.target_faces").set_value(["1"]).run()
    at.session_state["fs.options"] = False   # and closes it again: the choices still count, on later runs too
    at.run()
    at.run()
    assert not [s for s in at.selectbox if s.key == "fs.restore"]
    summary = next(c.value for c in at.caption if c.value.startswith("Swaps "))
    assert "no face restoration" in summary and "the 2nd largest face of each target" in summary, summary
    assert not at.exception
