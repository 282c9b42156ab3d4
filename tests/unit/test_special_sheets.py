"""Character sheets: one job per panel from the templates, and the labelled composition."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lib.config import ConsoleConfig
from lib.images import ImageError
from lib.inference import loras_on_volume
from lib.special import (
    PANELS,
    REFERENCE_LICENCE,
    SheetRequest,
    SpecialInputError,
    Upload,
    compose_progress,
    compose_sheet,
    default_trigger,
    plan_sheet,
    preflight_jobs,
    save_sheet,
    sheet_layout,
    sheet_progress,
    submit_jobs,
)
from lib.store import JobStore
from lib.tracker import Tracker
from lib.volume import LocalVolume
from tests.support.fakes import FakeJobs, png

CONFIG = ConsoleConfig.load(Path(__file__).resolve().parents[2] / "console.toml")
FLUX_FILES = ("models/unet/flux1-dev.safetensors", "models/clip/t5xxl_fp8_e4m3fn.safetensors",
              "models/clip/clip_l.safetensors", "models/vae/ae.safetensors")


def _solid(colour: tuple[int, int, int], size=(96, 144)) -> bytes:
    return png(Image.new("RGB", size, colour))


def _request(**changes) -> SheetRequest:
    base = dict(character="Ava", lora_name="ava_v1.safetensors", trigger="ava woman", seed=1234,
                details="red jacket, short black hair")
    base.update(changes)
    return SheetRequest(**base)


def _node(workflow: dict, class_type: str) -> dict:
    return next(node for node in workflow.values() if node["class_type"] == class_type)


def test_pose_approach_makes_one_job_per_panel():
    plan = plan_sheet(_request(), sheet_id="shA")
    assert plan.approach == "pose" and plan.licence is None
    assert [j.meta["panel"] for j in plan.jobs] == [p.key for p in PANELS]
    assert [j.label for j in plan.jobs] == ["Front", "Three-quarter", "Profile", "Back", "Neutral", "Smiling",
                                            "Angry", "Surprised", "Sad"]
    for job, panel in zip(plan.jobs, PANELS, strict=False):
        wf = job.input["workflow"]
        assert "images" not in job.input
        prompt = _node(wf, "CLIPTextEncode")["inputs"]["text"]
        assert prompt.startswith("ava woman, ") and panel.prompt in prompt and "red jacket" in prompt
        assert _node(wf, "KSampler")["inputs"]["seed"] == 1234
        assert _node(wf, "LoraLoaderModelOnly")["inputs"]["lora_name"] == "ava_v1.safetensors"
        latent = _node(wf, "EmptySD3LatentImage")["inputs"]
        assert (latent["width"], latent["height"]) == ((768, 1152) if panel.row == "views" else (768, 768))
        assert _node(wf, "SaveImage")["inputs"]["filename_prefix"] == f"shA_{panel.key}"
        assert job.idempotency_key == f"sheet_panel:shA:{panel.key}"
        assert job.meta["template"] == "sheet_pose_lora" and job.meta["character"] == "Ava"
    prompts = {_node(j.input["workflow"], "CLIPTextEncode")["inputs"]["text"] for j in plan.jobs}
    assert len(prompts) == 9


def test_reference_face_guides_every_panel_that_shows_the_face():
    face = Upload("ref.png", png(skdata.astronaut()))
    plan = plan_sheet(_request(reference=face, panels=("front", "back", "smiling")), sheet_id="shB")
    assert plan.approach == "reference" and plan.licence == REFERENCE_LICENCE
    assert "antelopev2" in REFERENCE_LICENCE and "non-commercial" in REFERENCE_LICENCE
    front, back, smiling = plan.jobs
    assert back.meta["approach"] == "pose" and "images" not in back.input
    for job in (front, smiling):
        assert job.meta["template"] == "sheet_reference_face"
        wf = job.input["workflow"]
        apply = _node(wf, "ApplyPulidFlux")["inputs"]
        assert set(apply) == {"model", "pulid_flux", "eva_clip", "face_analysis", "image", "weight", "start_at",
                              "end_at"}
        load = wf[apply["image"][0]]
        assert load["class_type"] == "LoadImage"
        assert [e["name"] for e in job.input["images"]] == [load["inputs"]["image"]]
        assert load["inputs"]["image"] == f"{job.meta['sheet']}_{job.meta['panel']}_face.png"
        assert _node(wf, "KSampler")["inputs"]["model"] == [next(n for n, v in wf.items()
                                                                 if v["class_type"] == "ApplyPulidFlux"), 0]


def test_sheet_inputs_are_checked_together():
    with pytest.raises(SpecialInputError) as err:
        plan_sheet(_request(trigger=" ", character="", panels=("front", "cartwheel")), sheet_id="shC")
    problems = err.value.problems
    assert "the trigger word is empty: use the word the LoRA was trained with" in problems
    assert "give the character a name (it titles the sheet)" in problems
    assert any(p.startswith("unknown panel(s) cartwheel") for p in problems)
    with pytest.raises(SpecialInputError, match="give the file name inside models/loras/"):
        plan_sheet(_request(lora_name="../secrets.safetensors"), sheet_id="shC")
    with pytest.raises(SpecialInputError, match="ref.gif: this is a GIF image"):
        plan_sheet(_request(reference=Upload("ref.gif", b"GIF89a" + b"\x00" * 64)), sheet_id="shC")


def test_preflight_finds_the_missing_lora(tmp_path):
    volume = LocalVolume(tmp_path)
    for key in FLUX_FILES:
        volume.write(key, b"weights")
    volume.write("models/loras/ava_v1.safetensors", b"lora")
    plan = plan_sheet(_request(), sheet_id="shD")
    assert preflight_jobs(plan.jobs, volume) == []
    missing = plan_sheet(_request(lora_name="zoe_v3.safetensors"), sheet_id="shD")
    problems = preflight_jobs(missing.jobs, volume)
    assert len(problems) == 1 and "'zoe_v3.safetensors' is not on the volume" in problems[0]
    assert loras_on_volume(volume) == ["ava_v1.safetensors"]


def test_default_trigger_drops_the_version():
    assert default_trigger("ava_v1.safetensors") == "ava"
    assert default_trigger("noor-zit-v12.safetensors") == "noor-zit"
    assert default_trigger("milo.safetensors") == "milo"


COLOURS = {"front": (200, 30, 30), "three_quarter": (30, 200, 30), "profile": (30, 30, 200),
           "back": (200, 200, 30), "neutral": (200, 30, 200), "smiling": (30, 200, 200),
           "angry": (120, 60, 0), "surprised": (0, 60, 120), "sad": (90, 90, 90)}


def _ink(sheet: np.ndarray, box) -> int:
    x, y, w, h = box
    band = sheet[y:y + h, x:x + w].astype(int)
    return int((band.sum(axis=2) < 300).sum())


def test_composed_sheet_has_labelled_rows():
    panels = {k: _solid(c, (96, 144) if k in ("front", "three_quarter", "profile", "back") else (96, 96))
              for k, c in COLOURS.items()}
    png = compose_sheet(panels, "Ava — character sheet")
    sheet = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    layout = sheet_layout(png)
    assert [p.key for p in layout] == list(COLOURS)
    assert [p.label for p in layout][:4] == ["Front", "Three-quarter", "Profile", "Back"]
    views, expressions = layout[:4], layout[4:]
    assert len({p.box[1] for p in views}) == 1 and len({p.box[1] for p in expressions}) == 1
    assert views[0].box[1] + views[0].box[3] < expressions[0].box[1]
    for placed in layout:
        x, y, w, h = placed.box
        centre = sheet[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4].reshape(-1, 3).mean(axis=0)
        assert np.allclose(centre, COLOURS[placed.key], atol=3), placed.key
        assert _ink(sheet, placed.label_box) > 20, f"no label under {placed.key}"
    ink = {p.key: _ink(sheet, p.label_box) for p in layout}
    assert ink["three_quarter"] > ink["back"]  # a longer label leaves more ink
    assert Image.open(io.BytesIO(png)).text["Title"] == "Ava — character sheet"


def test_partial_sheets_and_bad_panels():
    png = compose_sheet({"front": _solid((10, 10, 10)), "sad": _solid((50, 50, 50))}, "Ava")
    assert [p.key for p in sheet_layout(png)] == ["front", "sad"]
    with pytest.raises(ValueError, match="unknown sheet panel"):
        compose_sheet({"upside_down": _solid((1, 2, 3))}, "Ava")
    with pytest.raises(ValueError, match="no finished panels"):
        compose_sheet({}, "Ava")
    with pytest.raises(ImageError, match="^Profile panel: this is not an image"):
        compose_sheet({"profile": b"<html>error</html>"}, "Ava")


def test_progress_and_composition_from_the_store(tmp_path):
    store = JobStore(tmp_path)
    try:
        tracker = Tracker(store, CONFIG, lambda role: FakeJobs())
        plan = plan_sheet(_request(panels=("front", "profile", "neutral")), sheet_id="shE")
        outcome = submit_jobs(tracker, plan.jobs, user="ana@example.com", group="shE", config=CONFIG)
        for local_id, key in zip(outcome.local_ids[:2], ("front", "profile"), strict=False):
            store.save_output(local_id, f"shE_{key}_00001_.png", _solid(COLOURS[key]), "image/png")
        progress = sheet_progress(store, "shE")
        assert [p.key for p in progress.panels] == ["front", "profile", "neutral"]
        assert progress.done == 2 and not progress.finished and progress.character == "Ava"
        png = compose_progress(progress)
        assert [p.key for p in sheet_layout(png)] == ["front", "profile"]
        path = save_sheet(tmp_path, "shE", png)
        assert path == tmp_path / "sheets" / "shE.png" and path.read_bytes() == png
    finally:
        store.close()
