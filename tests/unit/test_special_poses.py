"""Pose-guided character sheets: the console's OpenPose skeletons and the ControlNet panel jobs."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from lib.special import PANELS, SheetRequest, SpecialInputError, Upload, drawn_pose, plan_sheet, preflight_jobs
from lib.special.poses import COLOURS, LIMBS, face_landmarks, panel_pose
from lib.volume import LocalVolume
from lib.workflows.graph import models_in_workflow

CONTROLNET = "models/controlnet/FLUX.1-dev-ControlNet-Union-Pro.safetensors"
FLUX_FILES = ("models/unet/flux1-dev.safetensors", "models/clip/t5xxl_fp8_e4m3fn.safetensors",
              "models/clip/clip_l.safetensors", "models/vae/ae.safetensors")


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def has_colour(image: np.ndarray, colour) -> bool:
    return bool((np.abs(image.astype(int) - colour).max(axis=2) <= 1).any())


def request(**changes) -> SheetRequest:
    return SheetRequest(**{"character": "Ava", "lora_name": "ava_v1.safetensors", "trigger": "ava", "seed": 7,
                           "pose_guided": True, **changes})


def test_openpose_conventions_seventeen_limbs_eighteen_colours():
    assert len(LIMBS) == 17 and len(COLOURS) == 18
    assert LIMBS[0] == (2, 3) and COLOURS[0] == (255, 0, 0) and COLOURS[12] == (0, 0, 255)


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.key)
def test_every_panel_gets_a_skeleton_on_black_at_its_size(panel):
    image = pixels(drawn_pose(panel.key))
    assert image.shape == (panel.height, panel.width, 3)
    assert (image.max(axis=2) == 0).mean() > 0.85  # black background, thin skeleton
    assert has_colour(image, (255, 85, 0))  # the neck dot
    assert has_colour(image, (255, 170, 0)) or has_colour(image, (85, 255, 0))  # a shoulder (one hides in profile)
    assert has_colour(image, (255, 0, 0)) == (panel.key != "back")  # the nose, unless it faces away
    if panel.row == "expressions":
        assert has_colour(image, (255, 255, 255))  # face landmarks in white
    else:
        assert not has_colour(image, (255, 255, 255))


def test_views_turn_the_figure_and_hide_what_faces_away():
    front, side, back = (pixels(panel_pose(v, 384, 576)) for v in ("front", "profile", "back"))
    nose = (255, 0, 0)

    def columns(image, colour):
        return np.nonzero((np.abs(image.astype(int) - colour).max(axis=2) <= 1).any(axis=0))[0]

    # The right shoulder dot is left of centre from the front and right of it from the back.
    assert columns(front, (255, 170, 0)).mean() < 192 < columns(back, (255, 170, 0)).mean()
    # From the back no eye (magenta 170,0,255 / 255,0,255) is drawn; in profile only one eye is.
    assert not has_colour(back, (170, 0, 255)) and not has_colour(back, (255, 0, 255))
    assert has_colour(side, (255, 0, 255)) != has_colour(side, (170, 0, 255))
    assert columns(side, nose).size and columns(front, nose).size


def test_expressions_differ_in_the_mouth_and_brows():
    shapes = {e: face_landmarks(e) for e in ("neutral", "smiling", "surprised", "angry", "sad")}
    assert all(s.shape == (70, 2) for s in shapes.values())
    mouth_gap = {e: s[66, 1] - s[62, 1] for e, s in shapes.items()}   # inner lips, lower minus upper
    assert mouth_gap["surprised"] > mouth_gap["smiling"] > mouth_gap["neutral"] >= 0
    corners = {e: s[48, 1] for e, s in shapes.items()}                  # outer mouth corner height
    assert corners["smiling"] < corners["neutral"] < corners["sad"]
    inner_brow = {e: s[21, 1] for e, s in shapes.items()}
    assert inner_brow["angry"] > inner_brow["neutral"] > inner_brow["sad"]


def test_pose_guided_sheet_sends_one_pose_per_panel_through_the_controlnet():
    plan = plan_sheet(request(), sheet_id="sheetp1")
    assert plan.approach == "controlnet" and len(plan.jobs) == len(PANELS)
    for job, panel in zip(plan.jobs, PANELS, strict=True):
        graph = job.input["workflow"]
        (entry,) = job.input["images"]
        assert graph["12"]["inputs"]["image"] == entry["name"] == f"sheetp1_{panel.key}_pose.png"
        assert graph["13"]["class_type"] == "ControlNetApplyAdvanced" and graph["9"]["inputs"]["positive"] == ["13", 0]
        assert graph["15"]["inputs"]["type"] == "openpose"
        assert (graph["16"]["inputs"]["width"], graph["16"]["inputs"]["height"]) == (panel.width, panel.height)
        assert base64.b64decode(entry["image"].split(",")[-1]) == drawn_pose(panel.key)
        assert job.meta["approach"] == "controlnet" and job.meta["pose"] == "drawn"
    refs = {r.expected_path for r in models_in_workflow(plan.jobs[0].input["workflow"])}
    assert CONTROLNET in refs


def test_an_own_pose_image_replaces_the_drawn_one_for_its_panel():
    own = Image.new("RGB", (300, 500), (0, 0, 0))
    buffer = io.BytesIO()
    own.save(buffer, "JPEG")
    plan = plan_sheet(request(panels=("front", "back"), pose_uploads={"back": Upload("mine.jpg", buffer.getvalue())}),
                      sheet_id="sheetp2")
    front, back = plan.jobs
    assert front.meta["pose"] == "drawn" and back.meta["pose"] == "uploaded"
    assert Image.open(io.BytesIO(base64.b64decode(back.input["images"][0]["image"].split(",")[-1]))).size == (300, 500)


@pytest.mark.parametrize("changes, message", [
    ({"pose_uploads": {"front": Upload("x.txt", b"not an image")}}, "x.txt"),
    ({"pose_uploads": {"sad": Upload("s.png", b"")}, "panels": ("front",)}, "not a chosen panel"),
    ({"reference": Upload("face.png", b"x")}, "either a reference face or pose images"),
    ({"pose_guided": False, "pose_uploads": {"front": Upload("p.png", b"x")}}, "pose guidance is off"),
])
def test_bad_pose_inputs_are_refused_with_a_reason(changes, message):
    with pytest.raises(SpecialInputError, match=message):
        plan_sheet(request(**changes), sheet_id="sheetp3")


def test_preflight_names_the_missing_controlnet_on_the_volume(tmp_path):
    volume = LocalVolume(tmp_path)
    for key in (*FLUX_FILES, "models/loras/ava_v1.safetensors"):
        volume.write(key, b"x")
    jobs = plan_sheet(request(panels=("front",)), sheet_id="sheetp4").jobs
    (problem,) = preflight_jobs(jobs, volume)
    assert "FLUX.1-dev-ControlNet-Union-Pro.safetensors" in problem and CONTROLNET in problem
    volume.write(CONTROLNET, b"x")
    assert preflight_jobs(jobs, volume) == []
