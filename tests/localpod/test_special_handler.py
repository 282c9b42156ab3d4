"""The simulator's `special` worker: worker-comfyui + ReActor (real OpenCV swap) + PuLID sheet panels."""
from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lib.localpod.comfy.faceswap_cv import FACE_PADDING, detect_faces
from lib.localpod.handlers import COMPLETED, FAILED, JobContext, execute, handler_for
from lib.runpod import JobStatus
from lib.special import FaceSwapOptions, SheetRequest, Upload, plan_faceswap, plan_sheet

FLUX = ("models/unet/flux1-dev.safetensors", "models/clip/t5xxl_fp8_e4m3fn.safetensors",
        "models/clip/clip_l.safetensors", "models/vae/ae.safetensors", "models/loras/ava_v1.safetensors")


class Ctx(JobContext):
    def __init__(self, volume_dir: Path):
        self.updates: list = []
        super().__init__("job-1", "special-sim01", "special", "w1", volume_dir, 0.0,
                         on_progress=self.updates.append)
        self.simulated = 0.0

    def sleep(self, simulated_seconds: float) -> None:
        self.simulated += simulated_seconds
        super().sleep(simulated_seconds)


@pytest.fixture(autouse=True)
def _no_bucket(monkeypatch):
    monkeypatch.delenv("BUCKET_ENDPOINT_URL", raising=False)


@pytest.fixture
def volume(tmp_path):
    for key in FLUX:
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    return tmp_path


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def target() -> np.ndarray:
    canvas = skdata.coffee().copy()
    small = cv2.resize(skdata.astronaut(), (358, 358), interpolation=cv2.INTER_AREA)
    canvas[20:378, 200:558] = np.clip(small.astype(np.int16) + np.array([-25, 0, 30]), 0, 255)
    return canvas


@pytest.fixture(scope="module")
def swap_inputs(target) -> list[dict]:
    plan = plan_faceswap(Upload("face.png", _png(skdata.astronaut())),
                         [Upload("beach.png", _png(target)), Upload("coffee.png", _png(skdata.coffee()))],
                         FaceSwapOptions(), batch_id="fs1")
    return [job.input for job in plan.jobs]


def run(volume: Path, job_input) -> tuple:
    ctx = Ctx(volume)
    outcome = execute(handler_for("special"), {"id": "job-1", "input": job_input}, ctx)
    return outcome, ctx


def decode(output: dict, index: int = 0) -> np.ndarray:
    entry = output["images"][index]
    assert entry["type"] == "base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["data"]))).convert("RGB"))


def test_face_swap_changes_the_face_and_keeps_the_rest(volume, swap_inputs, target):
    outcome, ctx = run(volume, swap_inputs[0])
    assert outcome.status == COMPLETED, outcome.error
    assert [i["filename"] for i in outcome.output["images"]] == ["fs1_t1_00001_.png"]
    assert "errors" not in outcome.output
    result = decode(outcome.output)
    assert result.shape == target.shape
    box = detect_faces(target)[0]
    diff = np.abs(result.astype(np.int16) - target.astype(np.int16)).sum(axis=2)
    inside = diff[box.y:box.y + box.h, box.x:box.x + box.w]
    px, py = round(box.w * FACE_PADDING), round(box.h * FACE_PADDING)
    outside = np.ones(diff.shape, bool)
    outside[box.y - py:box.y + box.h + py, box.x - px:box.x + box.w + px] = False
    assert inside.mean() > 15
    assert diff[outside].max() == 0
    assert ctx.simulated > 1.0 and ctx.updates == [{"step": 1, "total": 1}]


def test_no_face_in_the_target_completes_unchanged_with_a_warning(volume, swap_inputs):
    outcome, _ = run(volume, swap_inputs[1])
    assert outcome.status == COMPLETED
    assert np.array_equal(decode(outcome.output), skdata.coffee())
    assert outcome.output["errors"] == [
        "ReActorFaceSwap (node 3): no face was detected in the target image; it is returned unchanged"]


def test_job_input_may_be_a_json_string(volume, swap_inputs):
    outcome, _ = run(volume, json.dumps(swap_inputs[1]))
    assert outcome.status == COMPLETED


def test_unknown_node_gets_the_image_handlers_text(volume, swap_inputs):
    broken = copy.deepcopy(swap_inputs[0])
    broken["workflow"]["3"]["class_type"] = "FaceFusionSwap"
    outcome, _ = run(volume, broken)
    assert outcome.status == FAILED
    assert outcome.error.startswith("Cannot execute because node FaceFusionSwap does not exist.. Raw response: ")
    assert '"details": "Node ID \'#3\'"' in outcome.error
    image_outcome = execute(handler_for("image"), {"id": "job-2", "input": broken}, Ctx(volume))
    assert image_outcome.error == outcome.error


def test_reactor_is_unknown_on_the_image_role(volume, swap_inputs):
    outcome = execute(handler_for("image"), {"id": "job-2", "input": swap_inputs[0]}, Ctx(volume))
    assert outcome.status == FAILED and "node ReActorFaceSwap does not exist" in outcome.error


def test_load_image_names_must_be_sent(volume, swap_inputs):
    broken = copy.deepcopy(swap_inputs[0])
    broken["images"] = [e for e in broken["images"] if e["name"].endswith("_face.png")]
    outcome, _ = run(volume, broken)
    assert outcome.status == FAILED
    assert outcome.error.startswith("Workflow validation failed:\n• Node 1 (errors): ")
    assert "Invalid image file: fs1_t1_target.png" in outcome.error


def test_custom_node_values_are_validated_like_comfyui(volume, swap_inputs):
    broken = copy.deepcopy(swap_inputs[0])
    broken["workflow"]["3"]["inputs"]["face_restore_model"] = "restoreformer.pth"
    del broken["workflow"]["3"]["inputs"]["codeformer_weight"]
    outcome, _ = run(volume, broken)
    assert outcome.status == FAILED
    lines = outcome.error.split("\n")
    assert lines[0] == "Workflow validation failed:"
    assert lines[1].startswith("• Node 3 (errors): [{'type': 'required_input_missing'")
    assert "face_restore_model: 'restoreformer.pth' not in ['none', 'codeformer-v0.1.0.pth'" in lines[1]
    assert lines[2:] == ["• Node 3 (dependent_outputs): ['4']", "• Node 3 (class_type): ReActorFaceSwap"]


def test_disabled_swap_and_ignored_gender_filter(volume, swap_inputs, target):
    disabled = copy.deepcopy(swap_inputs[0])
    disabled["workflow"]["3"]["inputs"]["enabled"] = False
    outcome, _ = run(volume, disabled)
    assert np.array_equal(decode(outcome.output), target) and "errors" not in outcome.output
    gendered = copy.deepcopy(swap_inputs[0])
    gendered["workflow"]["3"]["inputs"]["detect_gender_input"] = "female"
    outcome, _ = run(volume, gendered)
    assert outcome.output["errors"] == ["ReActorFaceSwap (node 3): the simulator cannot tell faces' gender; "
                                        "detect_gender_input = 'female' was ignored"]


def test_bad_face_numbers_fail_the_node(volume, swap_inputs):
    broken = copy.deepcopy(swap_inputs[0])
    broken["workflow"]["3"]["inputs"]["input_faces_index"] = "first"
    returned = handler_for("special")({"id": "job-1", "input": broken}, Ctx(volume))
    assert returned["error"] == "Job processing failed"
    assert returned["details"] == [
        "Workflow execution error: Node Type: ReActorFaceSwap, Node ID: 3, Message: input_faces_index: no face "
        "number in 'first' (0 = the largest face)"]


def test_sheet_panels_are_generated_and_differ(volume):
    plan = plan_sheet(SheetRequest(character="Ava", lora_name="ava_v1.safetensors", trigger="ava", seed=7,
                                   panels=("front", "profile")), sheet_id="sh1")
    pictures = []
    for job in plan.jobs:
        outcome, ctx = run(volume, job.input)
        assert outcome.status == COMPLETED, outcome.error
        assert outcome.output["images"][0]["filename"] == f"sh1_{job.meta['panel']}_00001_.png"
        pictures.append(decode(outcome.output))
        assert ctx.simulated > 5  # FLUX sampling time, scaled away by time_scale 0
    assert pictures[0].shape == (1152, 768, 3)
    assert not np.array_equal(pictures[0], pictures[1])


def test_reference_face_panel_carries_the_face(volume):
    face = Upload("ref.png", _png(skdata.astronaut()))
    request = SheetRequest(character="Ava", lora_name="ava_v1.safetensors", trigger="ava", seed=7,
                           panels=("smiling",))
    guided = plan_sheet(SheetRequest(**{**request.__dict__, "reference": face}), sheet_id="sh2").jobs[0]
    plain = plan_sheet(request, sheet_id="sh2").jobs[0]
    with_face, _ = run(volume, guided.input)
    without, _ = run(volume, plain.input)
    assert with_face.status == COMPLETED, with_face.error
    a, b = decode(with_face.output), decode(without.output)
    assert a.shape == b.shape == (768, 768, 3)
    changed = np.argwhere(np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 0)
    # Only the inset in the top-right corner differs.
    assert changed[:, 0].max() < 768 * 0.45 and changed[:, 1].min() > 768 * 0.5


def test_pulid_needs_the_baked_model(volume):
    face = Upload("ref.png", _png(skdata.astronaut()))
    job = plan_sheet(SheetRequest(character="Ava", lora_name="ava_v1.safetensors", trigger="ava", seed=7,
                                  panels=("front",), reference=face), sheet_id="sh3").jobs[0]
    broken = copy.deepcopy(job.input)
    loader = next(n for n in broken["workflow"].values() if n["class_type"] == "PulidFluxModelLoader")
    loader["inputs"]["pulid_file"] = "pulid_flux_v0.8.safetensors"
    outcome, _ = run(volume, broken)
    assert outcome.status == FAILED
    assert "pulid_file: 'pulid_flux_v0.8.safetensors' not in ['pulid_flux_v0.9.0.safetensors']" in outcome.error


def test_face_swap_through_the_simulator_http_api(localpod, swap_inputs):
    from lib.runpod import RunPod

    client = RunPod("test-key", api_url=localpod.api_url, rest_url=localpod.rest_url)
    try:
        jobs = client.endpoint("special-sim01")
        job = jobs.wait(jobs.run(swap_inputs[0]).id, timeout_s=30)
        assert job.status == JobStatus.COMPLETED, job.error
        assert job.output["images"][0]["filename"].startswith("fs1_t1_")
    finally:
        client.close()
