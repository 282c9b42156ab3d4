"""The simulator's `training` endpoint: the worker's handler + stand-in trainer behind a JobContext."""
from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image
from safetensors.numpy import load_file

from lib.localpod.handlers import CANCELLED, COMPLETED, FAILED, JobContext, execute, handler_for
from lib.localpod.handlers import training as sim
from lib.training.config import build_config, default_params


def training_job(steps: int) -> dict:
    params = replace(default_params("flux1-dev"), steps=steps, save_every=max(1, steps // 4),
                     sample_every=max(1, steps // 2))
    config = build_config(name="ava", trigger_word="ava_tok", dataset_path="/runpod-volume/datasets/ava/v1",
                          training_folder="/runpod-volume/loras/ava/run-7", params=params)
    return {"id": "sim-job-1", "input": {
        "name": "ava", "trigger_word": "ava_tok", "dataset_path": "/runpod-volume/datasets/ava/v1",
        "output_path": "/runpod-volume/loras/ava/run-7", "config": config}}


def context(volume: Path, time_scale: float, *, on_progress=None, cancel=None) -> JobContext:
    return JobContext("sim-job-1", "training-sim01", "training", "w1", volume, time_scale,
                      on_progress=on_progress, cancel_event=cancel)


def processes_mentioning(marker: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
            state = (cmdline.parent / "stat").read_text().split()[2]
        except OSError:
            continue   # the process ended while we looked
        if str(marker) in text and state != "Z":
            found.append(cmdline.parent.name)
    return found


def make_volume(tmp_path: Path) -> Path:
    folder = tmp_path / "volume" / "datasets" / "ava" / "v1"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (i * 90, 40, 40)).save(folder / f"a{i}.jpg")
    return tmp_path / "volume"


def test_the_training_role_has_its_own_handler():
    assert handler_for("training") is sim.handle


def test_a_simulated_run_completes_with_checkpoints_on_the_simulated_volume(tmp_path):
    volume = make_volume(tmp_path)
    updates = []
    outcome = execute(sim.handle, training_job(200), context(volume, 0.002, on_progress=updates.append))
    assert outcome.status == COMPLETED, outcome.error
    out = outcome.output
    assert out["lora_path"] == "/runpod-volume/loras/ava/run-7/ava.safetensors"
    assert [c["step"] for c in out["checkpoints"]] == [50, 100, 150, 200]
    for c in out["checkpoints"]:
        assert load_file(str(volume / c["path"].removeprefix("/runpod-volume/")))
    # AI Toolkit runs steps 0 … steps-1 and logs no loss at step 0 (worker-contracts §3.4)
    assert [step for step, _ in out["loss"]] == list(range(1, 200))
    assert updates and updates[-1]["total_steps"] == 200


def test_the_step_delay_follows_the_time_scale(tmp_path):
    volume = make_volume(tmp_path)
    started = time.monotonic()
    outcome = execute(sim.handle, training_job(100), context(volume, 0.02))
    elapsed = time.monotonic() - started
    assert outcome.status == COMPLETED
    # 100 steps × 0.3 simulated s × 0.02 = 0.6 s of stepping at least.
    assert elapsed >= 100 * sim.SIM_SECONDS_PER_STEP * 0.02


def test_cancelling_the_job_stops_the_trainer(tmp_path, monkeypatch):
    volume = make_volume(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))   # where the worker makes its work folder
    cancel = threading.Event()

    def on_progress(update):
        if update["step"] >= 10:
            cancel.set()

    started = time.monotonic()
    outcome = execute(sim.handle, training_job(100_000), context(volume, 0.01, on_progress=on_progress,
                                                                   cancel=cancel))
    assert outcome.status == CANCELLED
    assert time.monotonic() - started < 20
    assert list(work.iterdir()) == []
    assert processes_mentioning(work) == []


def test_bad_input_fails_the_job_with_a_clear_error(tmp_path):
    volume = make_volume(tmp_path)
    job = training_job(10)
    job["input"]["dataset_path"] = "/runpod-volume/datasets/ava/v404"
    outcome = execute(sim.handle, job, context(volume, 0.01))
    assert outcome.status == FAILED
    assert outcome.error == ("invalid input: the training set /runpod-volume/datasets/ava/v404 does not exist "
                             "on the volume")
