"""Face-swap planning: ReActor payloads exactly as worker-contracts §2.6, one job per target."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lib.config import ConsoleConfig
from lib.images import RUN_BODY_LIMIT, body_bytes
from lib.special import (
    FACE_MODEL_LICENCE,
    FaceSwapOptions,
    SpecialInputError,
    Upload,
    batch_results,
    describe_faces,
    plan_faceswap,
    preflight_jobs,
    submit_jobs,
)
from lib.store import JobStore
from lib.tracker import Tracker
from lib.volume import LocalVolume
from lib.workflows.templates import load_template
from tests.support.fakes import FakeJobs, jpeg, png

CONFIG = ConsoleConfig.load(Path(__file__).resolve().parents[2] / "console.toml")
REACTOR_INPUTS = {"enabled", "input_image", "source_image", "swap_model", "facedetection",
                  "face_restore_model", "face_restore_visibility", "codeformer_weight",
                  "detect_gender_input", "detect_gender_source", "input_faces_index",
                  "source_faces_index", "console_log_level"}


@pytest.fixture(scope="module")
def face() -> Upload:
    return Upload("me.png", png(skdata.astronaut()))


@pytest.fixture(scope="module")
def targets() -> list[Upload]:
    beach = skdata.coffee().copy()
    beach[20:378, 200:558] = cv2.resize(skdata.astronaut(), (358, 358))
    return [Upload("beach.jpg", jpeg(beach, quality=92)), Upload("office.png", png(skdata.chelsea()))]


def _decoded(entry: dict) -> np.ndarray:
    raw = entry["image"].split(",", 1)[1]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(raw))).convert("RGB"))


def test_template_is_the_reference_graph():
    template = load_template("faceswap_reactor")
    assert template.role == "special" and template.required_models == ()
    wf = template.workflow
    assert [wf[n]["class_type"] for n in ("1", "2", "3", "4")] == ["LoadImage", "LoadImage", "ReActorFaceSwap",
                                                                   "SaveImage"]
    assert set(wf["3"]["inputs"]) == REACTOR_INPUTS


def test_payload_matches_worker_contract(face, targets):
    plan = plan_faceswap(face, targets, FaceSwapOptions(), batch_id="fsA1")
    assert len(plan.jobs) == 2
    seen_names, prefixes = set(), set()
    # A JPEG target stays JPEG; PNG inputs small enough go lossless.
    for n, (job, ext) in enumerate(zip(plan.jobs, (".jpg", ".png"), strict=False), start=1):
        assert set(job.input) == {"workflow", "images"}
        wf = job.input["workflow"]
        loads = {nid: node["inputs"]["image"] for nid, node in wf.items() if node["class_type"] == "LoadImage"}
        swap = next(node for node in wf.values() if node["class_type"] == "ReActorFaceSwap")
        save = next(node for node in wf.values() if node["class_type"] == "SaveImage")
        assert set(swap["inputs"]) == REACTOR_INPUTS
        target_node, source_node = swap["inputs"]["input_image"][0], swap["inputs"]["source_image"][0]
        assert loads[target_node] == f"fsA1_t{n}_target{ext}"
        assert loads[source_node] == f"fsA1_t{n}_face.png"
        assert save["inputs"] == {"images": ["3", 0], "filename_prefix": f"fsA1_t{n}"}
        names = [entry["name"] for entry in job.input["images"]]
        assert sorted(names) == sorted(loads.values())
        assert not seen_names & set(names)
        seen_names |= set(names)
        prefixes.add(save["inputs"]["filename_prefix"])
        assert swap["inputs"]["swap_model"] == "inswapper_128.onnx"
        assert swap["inputs"]["enabled"] is True and swap["inputs"]["console_log_level"] == 1
    assert len(prefixes) == 2
    face_entry = next(e for e in plan.jobs[0].input["images"] if e["name"].endswith("_face.png"))
    assert np.array_equal(_decoded(face_entry), skdata.astronaut())


def test_one_job_per_target_with_stable_keys(face, targets):
    first = plan_faceswap(face, targets, FaceSwapOptions(), batch_id="fsB")
    again = plan_faceswap(face, targets, FaceSwapOptions(), batch_id="fsB")
    assert [j.idempotency_key for j in first.jobs] == ["faceswap:fsB:0", "faceswap:fsB:1"]
    assert [j.input for j in first.jobs] == [j.input for j in again.jobs]
    assert [j.meta["target_name"] for j in first.jobs] == ["beach.jpg", "office.png"]
    assert all(j.kind == "faceswap" and j.meta["batch"] == "fsB" for j in first.jobs)


def test_options_in_plain_words_reach_the_node(face, targets):
    options = FaceSwapOptions(source_faces="1", target_faces="0,2", restore_model="GFPGANv1.4.pth",
                              restore_visibility=0.6, codeformer_weight=0.3, source_gender="female",
                              target_gender="male", detector="YOLOv5n")
    plan = plan_faceswap(face, targets[:1], options, batch_id="fsC")
    swap = plan.jobs[0].input["workflow"]["3"]["inputs"]
    assert swap["source_faces_index"] == "1" and swap["input_faces_index"] == "0,2"
    assert swap["face_restore_model"] == "GFPGANv1.4.pth" and swap["face_restore_visibility"] == 0.6
    assert swap["codeformer_weight"] == 0.3 and swap["facedetection"] == "YOLOv5n"
    assert swap["detect_gender_source"] == "female" and swap["detect_gender_input"] == "male"
    assert options.summary() == ("the 2nd largest face of the source photo onto the largest and the 3rd "
                                 "largest faces of each target, restored with GFPGAN 1.4 at 60 %; "
                                 "source: only women's faces, target: only men's faces")
    assert FaceSwapOptions().summary() == ("the largest face of the source photo onto the largest face of "
                                           "each target, restored with CodeFormer at 100 % (fidelity 0.5)")
    assert describe_faces("0,1") == "the largest and the 2nd largest faces"


def test_bad_options_are_all_listed(face, targets):
    options = FaceSwapOptions(source_faces="0,1,2", target_faces="0,1", restore_model="magic.pth",
                              restore_visibility=0.0, codeformer_weight=2)
    with pytest.raises(SpecialInputError) as err:
        plan_faceswap(face, targets, options, batch_id="fsD")
    problems = err.value.problems
    assert "3 source faces were chosen for 2 target faces" in problems[0]
    assert any("face restoration 'magic.pth' is not available" in p for p in problems)
    assert any("restoration strength 0.0 is out of range" in p for p in problems)
    assert any("CodeFormer fidelity 2 is out of range" in p for p in problems)
    with pytest.raises(SpecialInputError, match="must be face numbers"):
        plan_faceswap(face, targets, FaceSwapOptions(target_faces="largest"), batch_id="fsD")


def test_hostile_uploads_each_get_their_message(face):
    with pytest.raises(SpecialInputError) as err:
        plan_faceswap(Upload("face.png", b""),
                      [Upload("notes.jpg", b"just some text, not a photo"), Upload("ok.png", face.data)],
                      FaceSwapOptions(), batch_id="fsE")
    assert err.value.problems == [
        "face.png: this is not an image (0 bytes) — upload a PNG, JPEG or WEBP file",
        "notes.jpg: this is not an image (its content is not PNG, JPEG or WEBP) — upload a PNG, JPEG or WEBP file"]
    with pytest.raises(SpecialInputError, match="add at least one target photo"):
        plan_faceswap(face, [], FaceSwapOptions(), batch_id="fsE")


def test_wrong_extension_is_noted_and_big_photos_fit(face):
    rng = np.random.default_rng(5)
    noisy = Image.fromarray(rng.integers(0, 255, (800, 1200, 3), dtype=np.uint8)).resize(
        (6000, 4000), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    noisy.save(buf, "JPEG", quality=95)
    plan = plan_faceswap(face, [Upload("holiday.png", buf.getvalue())], FaceSwapOptions(), batch_id="fsF")
    job = plan.jobs[0]
    assert body_bytes({"input": job.input}) <= RUN_BODY_LIMIT
    assert "holiday.png: the file is a JPEG image although its name ends in .png; it is read as JPEG" in plan.notes
    assert any(note.startswith("holiday.png: downscaled from 6000×4000 to ") for note in job.notes)


def test_licence_notice_names_the_models():
    assert "inswapper_128" in FACE_MODEL_LICENCE and "buffalo_l" in FACE_MODEL_LICENCE
    assert "non-commercial research only" in FACE_MODEL_LICENCE


def test_preflight_passes_without_models_on_the_volume(face, targets, tmp_path):
    plan = plan_faceswap(face, targets, FaceSwapOptions(), batch_id="fsG")
    assert preflight_jobs(plan.jobs, LocalVolume(tmp_path)) == []
    broken = dict(plan.jobs[0].input, images=plan.jobs[0].input["images"][:1])
    job = plan.jobs[0].__class__(kind="faceswap", label="x", input=broken, idempotency_key="k", meta={})
    problems = preflight_jobs([job], LocalVolume(tmp_path))
    assert len(problems) == 1 and "is not among the images sent with the job" in problems[0]


def test_submission_is_recorded_once_per_target_and_results_pair_up(face, targets, tmp_path):
    store = JobStore(tmp_path)
    try:
        jobs = FakeJobs()
        tracker = Tracker(store, CONFIG, lambda role: jobs)
        plan = plan_faceswap(face, targets, FaceSwapOptions(), batch_id="fsH")
        outcome = submit_jobs(tracker, plan.jobs, user="ana@example.com", group="fsH", config=CONFIG)
        again = submit_jobs(tracker, plan.jobs, user="ana@example.com", group="fsH", config=CONFIG)
        assert len(jobs.runs) == 2 and outcome.local_ids == again.local_ids and not outcome.refused
        assert (outcome.already_sent, again.already_sent) == (0, 2)
        record = store.get(outcome.local_ids[0])
        assert record.role == "special" and record.kind == "faceswap" and record.group == "fsH"
        assert record.est_cost_usd == pytest.approx(CONFIG.price_per_second("special") * 5.0)

        swapped = png(skdata.astronaut()[::-1].copy())
        store.save_output(outcome.local_ids[0], "fsH_t1_00001_.png", swapped, "image/png")
        views = batch_results(store, "fsH")
        assert [v.target_name for v in views] == ["beach.jpg", "office.png"]
        before = np.asarray(Image.open(io.BytesIO(views[0].before)).convert("RGB"))
        assert before.shape == (400, 600, 3)
        assert views[0].after is not None and views[0].after.read_bytes() == swapped
        assert views[1].after is None and not views[1].finished
    finally:
        store.close()
