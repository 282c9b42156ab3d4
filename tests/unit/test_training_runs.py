"""Run view helpers: progress/output parsing, live loss, staging candidates, promotion."""
from __future__ import annotations

import json

import pytest

from lib.training.charts import loss_figure, smooth
from lib.training.runs import (
    Checkpoint,
    RunError,
    format_duration,
    next_version,
    promote_checkpoint,
    read_live_loss,
    resume_point,
    run_view,
    stage_candidates,
    volume_key,
)
from lib.volume import LocalVolume, UnsafeKey

RUN = "/runpod-volume/loras/ava/run-1"


def ckpt(step: int, name: str | None = None) -> dict:
    return {"path": f"{RUN}/{name or f'ava_{step:09d}.safetensors'}", "step": step, "size": 10, "sha256": "ab" * 32}


PROGRESS = {"step": 480, "total_steps": 1000, "loss": 0.123, "speed": 2.5, "eta_s": 208,
            "checkpoints": [ckpt(250)], "samples": [{"path": f"{RUN}/samples/1__000000250_0.png", "step": 250,
                                                     "prompt": "ava_tok portrait"}]}
OUTPUT = {"lora_path": f"{RUN}/ava.safetensors",
          "checkpoints": [ckpt(250), ckpt(500), ckpt(750), ckpt(1000, "ava.safetensors")],
          "samples": [{"path": f"{RUN}/samples/1__000000000_0.png", "step": 0, "prompt": "p"},
                      {"path": f"{RUN}/samples/2__000001000_0.png", "step": 1000, "prompt": "p"}],
          "loss": [[1, 0.4], [2, 0.39], [1000, 0.08]]}


@pytest.fixture
def volume(tmp_path):
    vol = LocalVolume(tmp_path / "vol")
    for c in OUTPUT["checkpoints"]:
        vol.write(volume_key(c["path"]), f"weights {c['step']}".encode())
    return vol


def test_volume_key():
    assert volume_key(f"{RUN}/ava.safetensors") == "loras/ava/run-1/ava.safetensors"
    with pytest.raises(RunError):
        volume_key("/etc/passwd")
    with pytest.raises(UnsafeKey):
        volume_key("/runpod-volume/../etc/passwd")


def test_view_of_a_running_job():
    view = run_view(PROGRESS, None, loss_series=[(1, 0.4), (480, 0.12)])
    assert (view.step, view.total_steps, view.loss, view.speed, view.eta_s) == (480, 1000, 0.123, 2.5, 208)
    assert view.fraction == pytest.approx(0.48)
    assert [c.step for c in view.checkpoints] == [250]
    assert view.samples_by_step()[250][0].prompt == "ava_tok portrait"
    assert view.loss_series == ((1, 0.4), (480, 0.12))
    assert not view.finished and view.error is None


def test_a_fresher_live_loss_curve_moves_the_step_and_eta_on():
    view = run_view(PROGRESS, None, loss_series=[(1, 0.4), (600, 0.11)])
    assert (view.step, view.loss, view.eta_s) == (600, 0.11, (1000 - 600) / 2.5)


def test_view_of_a_finished_job():
    view = run_view(PROGRESS, OUTPUT)
    assert view.finished and view.lora_path == OUTPUT["lora_path"]
    assert view.step == 1000 and view.fraction == 1.0 and view.eta_s is None
    assert [c.step for c in view.checkpoints] == [250, 500, 750, 1000]
    assert view.loss == 0.08 and len(view.loss_series) == 3
    assert sorted(view.samples_by_step()) == [0, 1000]


def test_view_of_a_failed_job_splits_the_log_tail_from_the_error():
    error = "AI Toolkit exited with code 1: Error running job: CUDA out of memory\nline a\nline b"
    view = run_view(PROGRESS, None, error=error)
    assert view.error == "AI Toolkit exited with code 1: Error running job: CUDA out of memory"
    assert view.log_tail == ("line a", "line b")
    with_output = run_view(None, {"log_tail": ["x", "y"], "checkpoints": [ckpt(250)]}, error=error)
    assert with_output.log_tail == ("x", "y") and with_output.error == error
    assert [c.step for c in with_output.checkpoints] == [250]


def test_garbage_is_ignored():
    view = run_view({"step": "x", "checkpoints": [{"path": 3}], "loss": "low"}, {"loss": [["a", "b"], [1]]})
    assert (view.step, view.checkpoints, view.loss, view.loss_series) == (0, (), None, ())


def test_live_loss_from_the_volume(volume):
    assert read_live_loss(volume, RUN) == []
    volume.write("loras/ava/run-1/loss.json", json.dumps({"loss": [[1, 0.5], [2, 0.45]]}).encode())
    assert read_live_loss(volume, RUN) == [(1, 0.5), (2, 0.45)]
    volume.write("loras/ava/run-1/loss.json", b"{half a fi")
    assert read_live_loss(volume, RUN) == []


def test_promote_copies_to_models_loras_with_the_next_version(volume):
    view = run_view(None, OUTPUT)
    first = promote_checkpoint(volume, view.checkpoints[1], "ava")
    assert (first.target, first.lora_name, first.version) == ("models/loras/ava_v1.safetensors",
                                                             "ava_v1.safetensors", "v1")
    assert volume.read(first.target) == b"weights 500"
    assert first.source == "loras/ava/run-1/ava_000000500.safetensors" and first.sha256 == "ab" * 32
    second = promote_checkpoint(volume, view.checkpoints[-1], "ava")
    assert second.version == "v2" and volume.read(second.target) == b"weights 1000"
    assert next_version(volume, "ava") == "v3"
    with pytest.raises(RunError, match="already exists"):
        promote_checkpoint(volume, view.checkpoints[0], "ava", version="v1")
    assert volume.read("models/loras/ava_v1.safetensors") == b"weights 500"


def test_promote_refuses_bad_names_and_missing_files(volume):
    with pytest.raises(RunError, match="valid character"):
        promote_checkpoint(volume, Checkpoint(path=f"{RUN}/ava.safetensors", step=1), "../x")
    with pytest.raises(RunError, match="v1, v2"):
        promote_checkpoint(volume, Checkpoint(path=f"{RUN}/ava.safetensors", step=1), "ava", version="final")
    with pytest.raises(RunError, match="no longer on the volume"):
        promote_checkpoint(volume, Checkpoint(path=f"{RUN}/gone.safetensors", step=1), "ava")


def test_stage_candidates_for_the_comparison_grid(volume):
    view = run_view(None, OUTPUT)
    staged = stage_candidates(volume, view, "ava", "run-1", steps=[500, 750, 1000])
    assert [c.to_dict() for c in staged] == [
        {"lora_name": "_candidates/ava/run-1/ava_000000500.safetensors", "label": "step 500", "step": 500,
         "source": f"{RUN}/ava_000000500.safetensors"},
        {"lora_name": "_candidates/ava/run-1/ava_000000750.safetensors", "label": "step 750", "step": 750,
         "source": f"{RUN}/ava_000000750.safetensors"},
        {"lora_name": "_candidates/ava/run-1/ava.safetensors", "label": "final", "step": 1000,
         "source": f"{RUN}/ava.safetensors"}]
    assert volume.read("models/loras/_candidates/ava/run-1/ava_000000750.safetensors") == b"weights 750"
    # Staging twice is harmless; choosing nothing is not.
    assert len(stage_candidates(volume, view, "ava", "run-1", steps=[500])) == 1
    with pytest.raises(RunError, match="at least one"):
        stage_candidates(volume, view, "ava", "run-1", steps=[])


def test_loss_chart_smooths_without_start_bias_and_marks_checkpoints():
    assert smooth([0.5, 0.5, 0.5]) == pytest.approx([0.5, 0.5, 0.5])
    assert smooth([1.0, 0.0], weight=0.5) == pytest.approx([1.0, 1 / 3])
    fig = loss_figure([(1, 0.4), (2, 0.3), (3, 0.35)], checkpoint_steps=[2], total_steps=10)
    assert [t.name for t in fig.data] == ["loss", "smoothed"]
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].x0 == 2
    assert list(fig.layout.xaxis.range) == [0, 10]


def test_format_duration():
    assert [format_duration(s) for s in (None, 40, 600, 3900)] == ["—", "40 s", "10 min", "1 h 05 min"]


def test_a_cancelled_run_says_where_it_stopped_and_keeps_its_work():
    progress = {**PROGRESS, "phase": "sampling", "log_tail": ["ava:  48%|████▊     | 479/1000 [..]",
                                                           "Generating Images:  50%|█████     | 1/2 [..]"]}
    view = run_view(progress, None, error="job cancelled", loss_series=[(1, 0.4), (480, 0.12)], status="CANCELLED")
    assert view.error == "Cancelled at step 480 of 1000"
    assert view.log_tail == tuple(progress["log_tail"])      # the details, not the message
    assert view.loss_series == ((1, 0.4), (480, 0.12)) and view.eta_s is None and view.phase is None
    assert [c.step for c in view.checkpoints] == [250]
    timed_out = run_view(progress, None, status="TIMED_OUT")
    assert timed_out.error == "Timed out at step 480 of 1000"


def test_a_running_view_carries_the_phase_and_the_log_tail():
    view = run_view({**PROGRESS, "phase": "caching latents", "log_tail": ["Caching latents to disk: 40%"],
                     "learning_rate": 1e-4}, None)
    assert view.phase == "caching latents" and view.log_tail == ("Caching latents to disk: 40%",)
    assert view.learning_rate == 1e-4 and view.error is None


def test_resume_point_is_the_last_intermediate_checkpoint_of_a_network_run():
    config = {"config": {"process": [{"network": {"type": "lora"}}]}}
    stopped = run_view({**PROGRESS, "checkpoints": [ckpt(250), ckpt(500)]}, None, status="CANCELLED")
    assert resume_point(stopped, config).step == 500
    assert resume_point(stopped, {"config": {"process": [{"train": {}}]}}) is None   # no network: no resume
    assert resume_point(run_view(PROGRESS, OUTPUT), config) is None                   # finished
    assert resume_point(run_view({**PROGRESS, "checkpoints": []}, None, status="CANCELLED"), config) is None
