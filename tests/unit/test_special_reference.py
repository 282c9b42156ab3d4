"""Reference-image generation (IP-Adapter on SDXL): one job per image with the reference and its settings."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from lib.special import MODES, ReferenceRequest, SpecialInputError, Upload, plan_reference, preflight_jobs
from lib.special.reference import FACEID_LICENCE
from lib.volume import LocalVolume


def png(size=(200, 260)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def request(**changes) -> ReferenceRequest:
    return ReferenceRequest(**{"prompt": "ava reading in a café", "reference": Upload("ref.png", png()),
                               "seed": 10, **changes})


def node(graph: dict, class_type: str) -> dict:
    (found,) = [n["inputs"] for n in graph.values() if n["class_type"] == class_type]
    return found


@pytest.mark.parametrize("mode, loader, apply, preset, weight_type", [
    ("style", "IPAdapterUnifiedLoader", "IPAdapterAdvanced", "PLUS (high strength)", "style transfer"),
    ("face", "IPAdapterUnifiedLoader", "IPAdapterAdvanced", "PLUS FACE (portraits)", "linear"),
    ("faceid", "IPAdapterUnifiedLoaderFaceID", "IPAdapterFaceID", "FACEID PLUS V2", "linear"),
])
def test_each_mode_sets_its_preset_weight_and_window(mode, loader, apply, preset, weight_type):
    plan = plan_reference(request(mode=mode, weight=1.2, start_at=0.1, end_at=0.8, count=3), batch_id="ref9")
    assert [j.meta["seed"] for j in plan.jobs] == [10, 11, 12]
    for job in plan.jobs:
        graph = job.input["workflow"]
        assert node(graph, loader)["preset"] == preset
        settings = node(graph, apply)
        assert (settings["weight"], settings["start_at"], settings["end_at"], settings["weight_type"]) == (
            1.2, 0.1, 0.8, weight_type)
        (entry,) = job.input["images"]
        assert node(graph, "LoadImage")["image"] == entry["name"] and entry["name"].startswith(job.meta["batch"])
        assert Image.open(io.BytesIO(base64.b64decode(entry["image"]))).size == (200, 260)
        assert node(graph, "KSampler")["seed"] == job.meta["seed"]
    assert plan.licence == (FACEID_LICENCE if mode == "faceid" else None)
    assert MODES[mode].template == plan.jobs[0].meta["template"]


def test_the_lora_is_optional_and_used_when_chosen():
    without = plan_reference(request(), batch_id="ref1").jobs[0].input["workflow"]
    assert "LoraLoader" not in {n["class_type"] for n in without.values()}
    assert node(without, "IPAdapterUnifiedLoader")["model"] == ["1", 0]
    with_lora = plan_reference(request(lora_name="ava_sdxl.safetensors", lora_strength=0.7), batch_id="ref2")
    lora = node(with_lora.jobs[0].input["workflow"], "LoraLoader")
    assert (lora["lora_name"], lora["strength_model"]) == ("ava_sdxl.safetensors", 0.7)


@pytest.mark.parametrize("changes, message", [
    ({"prompt": "  "}, "the prompt is empty"),
    ({"weight": 2.5}, "weight 2.5 is out of range"),
    ({"start_at": 0.7, "end_at": 0.4}, "start must be below end"),
    ({"count": 0}, "make 1 to 8 images"),
    ({"mode": "magic"}, "unknown reference mode"),
    ({"reference": Upload("notes.png", b"hello")}, "notes.png"),
])
def test_bad_inputs_are_refused_with_a_reason(changes, message):
    with pytest.raises(SpecialInputError, match=message):
        plan_reference(request(**changes), batch_id="ref3")


def test_preflight_checks_the_sdxl_checkpoint_and_the_lora(tmp_path):
    volume = LocalVolume(tmp_path)
    jobs = plan_reference(request(lora_name="ava_sdxl.safetensors"), batch_id="ref4").jobs
    problems = preflight_jobs(jobs, volume)
    assert any("sd_xl_base_1.0.safetensors" in p for p in problems)
    assert any("ava_sdxl.safetensors" in p for p in problems)
    volume.write("models/checkpoints/sd_xl_base_1.0.safetensors", b"x")
    volume.write("models/loras/ava_sdxl.safetensors", b"x")
    assert preflight_jobs(jobs, volume) == []


def test_a_failed_jobs_message_reads_the_node_errors_the_worker_sent_in_details():
    from types import SimpleNamespace

    from lib.special.common import job_error
    failed = SimpleNamespace(status="FAILED", error="Job processing failed", output={"details": [
        "Node IPAdapterUnifiedLoader (10): ClipVision model not found."]})
    assert job_error(failed) == ("The workflow failed on the worker: Node IPAdapterUnifiedLoader (10): "
                                 "ClipVision model not found.")
    assert job_error(SimpleNamespace(status="COMPLETED", error=None, output={})) is None
    assert job_error(SimpleNamespace(status="CANCELLED", error=None, output=None)) == "cancelled"
