"""Preflight against a LocalVolume: missing and misplaced models, input images, body size, listing cost."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from lib.volume import LocalVolume, VolumeError
from lib.workflows import build_payload, load_template, preflight
from lib.workflows.preflight import INPUT_IMAGE, INVALID, MISPLACED, MISSING, TOO_LARGE
from tests.support.fakes import volume_with

ZIT_MODELS = ("models/unet/z_image_turbo_bf16.safetensors", "models/clip/qwen_3_4b.safetensors",
              "models/vae/ae.safetensors")


def make_volume(tmp_path, *keys: str) -> LocalVolume:
    return LocalVolume(volume_with(tmp_path, keys))


class CountingVolume:
    """Delegates to a LocalVolume and records every listing prefix."""

    def __init__(self, inner):
        self.inner = inner
        self.prefixes: list[str] = []

    def list(self, prefix=""):
        self.prefixes.append(prefix)
        return self.inner.list(prefix)


def zit_payload(**params):
    return build_payload(load_template("z_image_turbo_lora"),
                         {"prompt": "ava", "seed": 1, **params}, job_tag="pf1")


def png_b64(size=(8, 8)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_everything_in_place_passes_with_one_listing(tmp_path):
    volume = CountingVolume(make_volume(tmp_path, *ZIT_MODELS, "models/loras/ava/ava_v1.safetensors"))
    report = preflight(zit_payload(lora_name="ava/ava_v1.safetensors"), volume)
    assert report.ok and report.problems == []
    assert [m.expected_path for m in report.models][-1] == "models/loras/ava/ava_v1.safetensors"
    assert volume.prefixes == ["models/"]
    assert 0 < report.body_bytes < 10_000
    assert "passed" in report.summary


def test_missing_lora_names_node_field_expected_path_and_nearest(tmp_path):
    volume = make_volume(tmp_path, *ZIT_MODELS, "models/loras/ava_v1.safetensors",
                         "models/loras/bob_final.safetensors")
    report = preflight(zit_payload(lora_name="ava_v2.safetensors"), volume)
    assert not report.ok
    (problem,) = report.problems
    assert (problem.kind, problem.node_id, problem.class_type, problem.field) == (
        MISSING, "4", "LoraLoaderModelOnly", "lora_name")
    assert problem.expected_path == "models/loras/ava_v2.safetensors"
    assert problem.nearest == "ava_v1.safetensors" and problem.found_at is None
    assert "closest file in models/loras/ is 'ava_v1.safetensors'" in problem.message


def test_files_in_the_invisible_folders_are_misplaced_not_missing(tmp_path):
    volume = make_volume(tmp_path, "models/diffusion_models/z_image_turbo_bf16.safetensors",
                         "models/text_encoders/qwen_3_4b.safetensors", "models/vae/ae.safetensors")
    report = preflight(zit_payload(), volume)
    found = {(p.kind, p.field, p.found_at, p.expected_path) for p in report.problems}
    assert found == {
        (MISPLACED, "unet_name", "models/diffusion_models/z_image_turbo_bf16.safetensors",
         "models/unet/z_image_turbo_bf16.safetensors"),
        (MISPLACED, "clip_name", "models/text_encoders/qwen_3_4b.safetensors",
         "models/clip/qwen_3_4b.safetensors"),
    }
    unet = next(p for p in report.problems if p.field == "unet_name")
    assert "not scanned by the stock worker-comfyui" in unet.message
    assert "Move it to models/unet/z_image_turbo_bf16.safetensors" in unet.message


def test_wrong_root_wrong_folder_and_unpromoted_training_output(tmp_path):
    volume = make_volume(tmp_path, "checkpoints/sd_xl_base_1.0.safetensors",
                         "models/checkpoints/ava_sdxl.safetensors",
                         "loras/ava-run3/ava-run3_000002000.safetensors")
    template = load_template("sdxl_lora")
    payload = build_payload(template, {"prompt": "x", "seed": 1,
                                       "lora_name": "ava-run3_000002000.safetensors"}, job_tag="w")
    problems = {p.field: p for p in preflight(payload, volume).problems}
    assert problems["ckpt_name"].kind == MISPLACED
    assert problems["ckpt_name"].found_at == "checkpoints/sd_xl_base_1.0.safetensors"
    assert "directly under the volume root" in problems["ckpt_name"].message
    assert problems["lora_name"].found_at == "loras/ava-run3/ava-run3_000002000.safetensors"
    assert "not been promoted" in problems["lora_name"].message
    payload["input"]["workflow"]["2"]["inputs"]["lora_name"] = "ava_sdxl.safetensors"
    misfiled = next(p for p in preflight(payload, volume).problems if p.field == "lora_name")
    assert misfiled.found_at == "models/checkpoints/ava_sdxl.safetensors"
    assert "only loads from models/loras/" in misfiled.message


def test_empty_folder_and_bare_workflow(tmp_path):
    volume = make_volume(tmp_path, "models/vae/ae.safetensors")
    workflow = zit_payload()["input"]["workflow"]
    report = preflight(workflow, volume)
    unet = next(p for p in report.problems if p.field == "unet_name")
    assert unet.nearest is None and "models/unet/ is empty" in unet.message
    assert report.body_bytes is None


def test_load_image_must_be_sent_and_decodable(tmp_path):
    volume = make_volume(tmp_path)
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "job_face.png"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "job_body.png"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "job"}},
    }
    payload = {"input": {"workflow": workflow, "images": [
        {"name": "job_face.png", "image": "data:image/png;base64," + png_b64()},
        {"name": "job_bdy.png", "image": "bm90IGFuIGltYWdl"}]}}
    problems = preflight(payload, volume).problems
    assert [p.kind for p in problems] == [INPUT_IMAGE, INPUT_IMAGE]
    assert problems[0].node_id == "2" and problems[0].nearest == "job_bdy.png"
    assert "'job_body.png' is not among the images sent with the job" in problems[0].message
    assert "is not a readable image" in problems[1].message


def test_body_over_the_run_limit_is_blocked(tmp_path):
    volume = make_volume(tmp_path)
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "big.png"}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}}}
    payload = {"input": {"workflow": workflow, "images": [{"name": "big.png", "image": png_b64() + "A" * 10_000_000}]}}
    problems = preflight(payload, volume).problems
    assert TOO_LARGE in [p.kind for p in problems]
    assert "over RunPod's 10 MB limit" in next(p.message for p in problems if p.kind == TOO_LARGE)


def test_ui_format_is_reported_as_invalid(tmp_path):
    report = preflight({"nodes": [], "links": []}, make_volume(tmp_path))
    assert [p.kind for p in report.problems] == [INVALID]
    assert "UI format" in report.problems[0].message


def test_volume_failure_is_a_problem_not_a_crash(tmp_path):
    class Broken:
        def list(self, prefix=""):
            raise VolumeError("S3 answered 503")

    report = preflight(zit_payload(), Broken())
    assert not report.ok
    assert "could not be listed (S3 answered 503)" in report.problems[0].message


@pytest.mark.parametrize("wrapper", [lambda p: p, lambda p: p["input"]])
def test_payload_or_job_input_are_both_accepted(tmp_path, wrapper):
    volume = make_volume(tmp_path, *ZIT_MODELS)
    report = preflight(wrapper(zit_payload()), volume)
    assert report.ok and report.body_bytes is not None


def test_a_grid_is_checked_with_one_listing_and_each_problem_once(tmp_path):
    from lib.workflows import preflight_many

    volume = CountingVolume(make_volume(tmp_path, *ZIT_MODELS, "models/loras/ava_v1.safetensors"))
    payloads = [zit_payload(lora_name=name, seed=seed) for name in ("ava_v1.safetensors", "ava_v3.safetensors")
                for seed in (1, 2, 3)]
    report = preflight_many(payloads, volume)
    assert [p.file for p in report.problems] == ["ava_v3.safetensors"]
    assert volume.prefixes.count("models/") == 1
    assert len(report.models) == 5
