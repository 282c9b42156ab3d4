"""The simulator's worker-comfyui handler, called directly with a JobContext."""
from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from lib.localpod.handlers import (
    COMPLETED,
    FAILED,
    JobCancelled,
    JobContext,
    execute,
    handler_for,
)
from lib.localpod.handlers.image import handle
from lib.workflows import build_payload, describe_worker_error, load_template

MODELS = ("models/unet/z_image_turbo_bf16.safetensors", "models/clip/qwen_3_4b.safetensors",
          "models/vae/ae.safetensors", "models/unet/flux1-dev.safetensors",
          "models/clip/t5xxl_fp8_e4m3fn.safetensors", "models/clip/clip_l.safetensors",
          "models/checkpoints/sd_xl_base_1.0.safetensors", "models/loras/ava_v1.safetensors",
          "models/loras/bob_v2.safetensors")


class RecordingContext(JobContext):
    """A real JobContext that also adds up the simulated seconds the handler spends."""

    def __init__(self, volume_dir: Path, job_id: str = "job-1", worker_id: str = "w1", **kw):
        self.updates: list = []
        super().__init__(job_id, "image-sim01", "image", worker_id, volume_dir, 0.0,
                         on_progress=self.updates.append, **kw)
        self.simulated = 0.0

    def sleep(self, simulated_seconds: float) -> None:
        self.simulated += simulated_seconds
        super().sleep(simulated_seconds)


@pytest.fixture
def volume(tmp_path):
    for key in MODELS:
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    return tmp_path


@pytest.fixture(autouse=True)
def _no_bucket(monkeypatch):
    monkeypatch.delenv("BUCKET_ENDPOINT_URL", raising=False)


def job_input(template="z_image_turbo_lora", tag="job1", **params):
    values = {"prompt": "ava_tok on a harbour", "seed": 42, "width": 512, "height": 512, **params}
    return build_payload(load_template(template), values, job_tag=tag)["input"]


def run(volume, payload, **ctx_kw):
    ctx = RecordingContext(volume, **ctx_kw)
    return handle({"id": ctx.job_id, "input": payload}, ctx), ctx


def decoded(output, index=0) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(output["images"][index]["data"])))


def test_success_has_worker_comfyui_output_shape(volume):
    output, ctx = run(volume, job_input(lora_name="ava_v1.safetensors", batch_size=2))
    assert set(output) == {"images"}
    assert [(i["filename"], i["type"]) for i in output["images"]] == [
        ("job1_00001_.png", "base64"), ("job1_00002_.png", "base64")]
    image = decoded(output)
    assert image.format == "PNG" and image.size == (512, 512)
    assert json.loads(image.text["prompt"])["9"]["inputs"]["seed"] == 42
    assert ctx.updates[-1] == {"step": 8, "total": 8} and len(ctx.updates) == 4
    assert handler_for("image") is handle


def test_same_payload_gives_identical_pictures_and_parameters_change_them(volume):
    def first_png(**params):
        params = {"lora_name": "ava_v1.safetensors", **params}
        # A fresh worker each time, so every file is <prefix>_00001_.png like the first one.
        output, _ = run(volume, job_input(**params), worker_id=f"w-{len(seen)}")
        seen.append(output["images"][0]["filename"])
        return base64.b64decode(output["images"][0]["data"])

    seen: list[str] = []

    assert first_png() == first_png()
    pictures = {first_png(seed=43), first_png(prompt="someone else"), first_png(lora_strength=0.5),
                first_png(lora_name="bob_v2.safetensors"), first_png()}
    assert len(pictures) == 5
    assert set(seen) == {"job1_00001_.png"}


def test_lora_strength_visibly_changes_the_picture(volume):
    def pixels(strength):
        output, _ = run(volume, job_input(lora_name="ava_v1.safetensors", lora_strength=strength))
        return np.asarray(decoded(output).convert("RGB"), dtype=np.float32)[:400]  # above the caption

    weak, medium, strong = pixels(0.2), pixels(0.8), pixels(1.6)
    assert np.abs(weak - medium).mean() > 5
    assert np.abs(weak - strong).mean() > np.abs(weak - medium).mean()


def test_input_may_be_a_json_string(volume):
    output, _ = run(volume, json.dumps(job_input()))
    assert output["images"][0]["filename"] == "job1_00001_.png"


@pytest.mark.parametrize("payload, error", [
    (None, "Please provide input"),
    ("{not json", "Invalid JSON format in input"),
    ({"images": []}, "Missing 'workflow' parameter"),
    ({"workflow": {}, "images": [{"name": "a.png"}]},
     "'images' must be a list of objects with 'name' and 'image' keys"),
])
def test_input_validation_texts_match_worker_comfyui(volume, payload, error):
    assert run(volume, payload)[0] == {"error": error}


def test_unknown_node_class_gives_the_exact_comfyui_text(volume):
    payload = job_input()
    payload["workflow"]["5"]["class_type"] = "NoSuchNode"
    output, ctx = run(volume, payload)
    assert output == {"error": (
        'Cannot execute because node NoSuchNode does not exist.. Raw response: {"error": {"type": '
        '"invalid_prompt", "message": "Cannot execute because node NoSuchNode does not exist.", "details": '
        '"Node ID \'#5\'", "extra_info": {}}, "node_errors": {}}')}
    assert ctx.simulated == 0


def test_missing_lora_lists_what_is_available(volume):
    output, _ = run(volume, job_input(lora_name="ava_v9.safetensors"))
    assert output["error"] == (
        "Workflow validation failed:\n"
        "• Node 4 (errors): [{'type': 'value_not_in_list', 'message': 'Value not in list', 'details': "
        "\"lora_name: 'ava_v9.safetensors' not in ['ava_v1.safetensors', 'bob_v2.safetensors']\", "
        "'extra_info': {'input_name': 'lora_name', 'input_config': (['ava_v1.safetensors', "
        "'bob_v2.safetensors'], {}), 'received_value': 'ava_v9.safetensors'}}]\n"
        "• Node 4 (dependent_outputs): ['11']\n"
        "• Node 4 (class_type): LoraLoaderModelOnly")
    view = describe_worker_error(output["error"])
    assert (view.node_id, view.node_type) == ("4", "LoraLoaderModelOnly")


def test_a_lora_deleted_after_preflight_fails_on_the_worker(volume):
    payload = job_input(lora_name="ava_v1.safetensors")
    (volume / "models/loras/ava_v1.safetensors").unlink()
    assert "lora_name: 'ava_v1.safetensors' not in ['bob_v2.safetensors']" in run(volume, payload)[0]["error"]


def test_models_in_unscanned_folders_are_invisible_and_checkpoints_are_listed(volume):
    (volume / "models/unet/z_image_turbo_bf16.safetensors").rename(volume / "zit.safetensors")
    target = volume / "models/diffusion_models/z_image_turbo_bf16.safetensors"
    target.parent.mkdir(parents=True)
    (volume / "zit.safetensors").rename(target)
    error = run(volume, job_input())[0]["error"]
    assert "unet_name: 'z_image_turbo_bf16.safetensors' not in ['flux1-dev.safetensors']" in error
    sdxl = job_input("sdxl_lora")
    sdxl["workflow"]["1"]["inputs"]["ckpt_name"] = "nope.safetensors"
    error = run(volume, sdxl)[0]["error"]
    assert error.endswith("\n\nAvailable checkpoint models: sd_xl_base_1.0.safetensors")


def test_load_image_must_be_uploaded_and_decodable(volume):
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "j_face.png"}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "j"}}}
    output = run(volume, {"workflow": workflow})[0]
    assert "'type': 'custom_validation_failed'" in output["error"]
    assert "image - Invalid image file: j_face.png" in output["error"]
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, "PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    output = run(volume, {"workflow": workflow, "images": [{"name": "j_face.png", "image": image}]})[0]
    assert decoded(output).convert("RGB").getpixel((0, 0)) == (245, 235, 225)  # inverted, as ComfyUI does
    garbage = base64.b64encode(b"not an image").decode()
    output = run(volume, {"workflow": workflow, "images": [{"name": "j_face.png", "image": garbage}]})[0]
    assert output == {"error": "Job processing failed", "details": [
        "Workflow execution error: Node Type: LoadImage, Node ID: 1, Message: cannot identify image "
        "file '/comfyui/input/j_face.png'"]}


def test_simulated_time_follows_steps_pixels_and_family(volume):
    def seconds(template, **params):
        return run(volume, job_input(template, width=1024, height=1024, **params))[1].simulated

    zit, sdxl, flux = seconds("z_image_turbo_lora"), seconds("sdxl_lora"), seconds("flux_dev_lora")
    assert zit < sdxl < flux
    assert 1 < zit < 4 and 8 < flux < 20
    assert seconds("flux_dev_lora", steps=40) > 1.8 * flux - 2
    assert seconds("z_image_turbo_lora", batch_size=2) > 1.5 * zit


def test_too_large_a_batch_fails_like_a_cuda_oom(volume):
    output, _ = run(volume, job_input("flux_dev_lora", width=2048, height=2048, batch_size=3))
    assert output["error"] == "Job processing failed"
    view = describe_worker_error(output["error"], output["details"])
    assert (view.node_id, view.node_type) == ("9", "KSampler")
    assert "CUDA out of memory" in view.summary


def test_bucket_output_writes_into_the_volume_and_returns_a_file_url(volume, monkeypatch):
    monkeypatch.setenv("BUCKET_ENDPOINT_URL", "https://bucket.example")
    output, _ = run(volume, job_input(), job_id="job-s3")
    (entry,) = output["images"]
    assert entry["type"] == "s3_url" and entry["filename"] == "job1_00001_.png"
    path = Path(urlparse(entry["data"]).path)
    assert path == (volume / "outputs" / "job-s3" / "job1_00001_.png").resolve()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_counter_continues_on_a_warm_worker_for_a_reused_prefix(volume):
    payload = job_input(tag="ComfyUI")
    names = [run(volume, payload, worker_id="warm-1")[0]["images"][0]["filename"] for _ in range(2)]
    assert names == ["ComfyUI_00001_.png", "ComfyUI_00002_.png"]
    assert run(volume, payload, worker_id="fresh-2")[0]["images"][0]["filename"] == "ComfyUI_00001_.png"


def test_preview_only_outputs_and_no_outputs(volume):
    workflow = job_input()["workflow"]
    workflow["11"]["class_type"] = "PreviewImage"
    del workflow["11"]["inputs"]["filename_prefix"]
    assert run(volume, {"workflow": workflow})[0] == {"status": "success_no_images", "images": []}
    del workflow["11"]
    assert run(volume, {"workflow": workflow})[0]["error"].startswith("Prompt has no outputs. Raw response: ")


def test_cancel_stops_the_job_and_execute_maps_results(volume):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        run(volume, job_input(), cancel_event=cancel)
    ctx = RecordingContext(volume)
    assert execute(handle, {"id": "j", "input": job_input()}, ctx).status == COMPLETED
    failed = execute(handle, {"id": "j", "input": job_input(lora_name="gone.safetensors")}, ctx)
    assert failed.status == FAILED and failed.error.startswith("Workflow validation failed:")
