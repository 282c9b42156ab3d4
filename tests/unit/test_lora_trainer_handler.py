"""The training endpoint's worker handler, run against the stand-in trainer (a real subprocess)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from safetensors.numpy import load_file

from lib.training.config import build_config, default_params
from workers.lora_trainer import handler as worker

STANDIN = [sys.executable, str(Path(worker.__file__).with_name("standin_trainer.py"))]


def make_dataset(volume: Path, name: str = "ava", version: str = "v1", count: int = 3) -> Path:
    folder = volume / "datasets" / name / version
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (64, 64), (i * 60, 20, 90)).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text("ava_tok portrait")
    return folder


def job(steps=60, save_every=20, sample_every=30, prompts=("[trigger] portrait", "[trigger] in snow"),
        job_id="job-1", **overrides) -> dict:
    params = replace(default_params("zimage-turbo"), steps=steps, save_every=save_every,
                     sample_every=sample_every, sample_prompts=prompts)
    config = build_config(name="ava", trigger_word="ava_tok", dataset_path="/runpod-volume/datasets/ava/v1",
                          training_folder="/runpod-volume/loras/ava/run-1", params=params)
    spec = {"name": "ava", "trigger_word": "ava_tok", "dataset_path": "/runpod-volume/datasets/ava/v1",
            "output_path": "/runpod-volume/loras/ava/run-1", "config": config, **overrides}
    return {"id": job_id, "input": spec}


@pytest.fixture
def volume(tmp_path):
    root = tmp_path / "volume"
    make_dataset(root)
    return root


@pytest.fixture
def work(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


def trainer_processes(marker: Path) -> list[int]:
    """PIDs of live processes whose command line mentions `marker` (the per-test work folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if str(marker) in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def run(volume, work, the_job, *, step_s="0.01", env=None, **kw):
    updates: list[dict] = []
    result = worker.handler(the_job, progress=lambda j, p: updates.append(json.loads(json.dumps(p))),
                            run_cmd=STANDIN, volume_root=volume, work_root=work,
                            trainer_env={"STANDIN_STEP_SECONDS": step_s, **(env or {})},
                            poll_s=0.05, progress_every_s=0.1, stop_grace_s=kw.pop("stop_grace_s", 5.0), **kw)
    return result, updates


def test_bar_parsing():
    line = "ava:  12%|█▏        | 120/1000 [02:01<14:50,  1.01s/it, lr: 1.0e-04 loss: 4.123e-01]"
    parsed = worker.parse_bar(line)
    assert (parsed.desc, parsed.n, parsed.total, parsed.loss) == ("ava", 120, 1000, pytest.approx(0.4123))
    assert parsed.speed == pytest.approx(1 / 1.01) and parsed.remaining_s == 14 * 60 + 50
    fast = worker.parse_bar("Phase 1/2 ava: 50%|█████| 750/1500 [00:30<00:30, 25.00it/s, lr: 1.0e-04 loss: nan]")
    assert (fast.desc, fast.n, fast.total, fast.speed) == ("Phase 1/2 ava", 750, 1500, 25.0)
    fresh = worker.parse_bar("ava:   0%|          | 0/1000 [00:00<?, ?it/s]")
    assert (fresh.n, fresh.speed, fresh.remaining_s) == (0, None, None)
    scan = worker.parse_bar("100%|██████████| 20/20 [00:00<00:00, 3265.12it/s]")
    assert (scan.desc, scan.n, scan.total) == ("", 20, 20)
    assert worker.parse_bar("Loading model 1/2 shards") is None


def test_only_the_training_bar_moves_the_step():
    training = worker.TrainingBar("ava", 1000)
    assert training.matches(worker.parse_bar("ava:  12%|█▏        | 120/1000 [02:01<14:50,  1.01s/it]"))
    for other in ("100%|██████████| 20/20 [00:00<00:00, 3265.12it/s]",
                  "Caching latents to disk: 100%|██████████| 20/20 [00:05<00:00,  3.80it/s]",
                  "Generating Images:  50%|█████     | 1/2 [00:08<00:08,  8.00s/it]",
                  "ava:  50%|█████     | 1/2 [00:08<00:08,  8.00s/it]"):
        bar = worker.parse_bar(other)
        assert bar is not None and not training.matches(bar), other


def test_a_full_run_reports_progress_and_copies_valid_checkpoints(volume, work):
    result, updates = run(volume, work, job())
    assert "error" not in result, result
    out = volume / "loras" / "ava" / "run-1"

    assert [c["step"] for c in result["checkpoints"]] == [20, 40, 60]
    assert result["lora_path"] == "/runpod-volume/loras/ava/run-1/ava.safetensors"
    assert result["checkpoints"][-1]["path"] == result["lora_path"]
    for ckpt in result["checkpoints"]:
        local = volume / ckpt["path"].removeprefix("/runpod-volume/")
        assert local.stat().st_size == ckpt["size"]
        assert hashlib.sha256(local.read_bytes()).hexdigest() == ckpt["sha256"]
        tensors = load_file(str(local))
        assert tensors and all(t.dtype.name == "float16" for t in tensors.values())
    assert (out / "ava_000000020.safetensors").exists()

    assert sorted((s["step"], s["prompt"]) for s in result["samples"]) == [
        (0, "ava_tok in snow"), (0, "ava_tok portrait"), (30, "ava_tok in snow"), (30, "ava_tok portrait"),
        (60, "ava_tok in snow"), (60, "ava_tok portrait")]
    for sample in result["samples"]:
        Image.open(volume / sample["path"].removeprefix("/runpod-volume/")).verify()

    # AI Toolkit logs no metric at the first step (0) and runs steps 0 … steps-1.
    steps = [step for step, _ in result["loss"]]
    assert steps == list(range(1, 60))
    assert result["learning_rate"] and {v for _, v in result["learning_rate"]} == {0.0001}
    losses = [loss for _, loss in result["loss"]]
    assert sum(losses[:10]) > sum(losses[-10:])
    assert json.loads((out / "loss.json").read_text())["loss"] == result["loss"]

    # Progress: the contract's keys, steps never go back, checkpoints appear as they are written.
    assert len(updates) >= 3
    assert all(set(u) == {"phase", "step", "total_steps", "loss", "learning_rate", "speed", "eta_s",
                          "checkpoints", "samples", "log_tail"} for u in updates)
    assert {u["phase"] for u in updates} <= {"loading", "caching latents", "training", "sampling", "saving"}
    assert "training" in {u["phase"] for u in updates}
    assert all(u["total_steps"] == 60 for u in updates)
    seen = [u["step"] for u in updates]
    assert seen == sorted(seen) and seen[-1] > 20
    counts = [len(u["checkpoints"]) for u in updates]
    assert counts == sorted(counts) and counts[-1] >= 1
    assert any(u["speed"] and u["eta_s"] is not None for u in updates)

    # The training set version on the volume is untouched (AI Toolkit's latent cache went to the copy).
    assert sorted(p.name for p in (volume / "datasets" / "ava" / "v1").iterdir()) == [
        "img0.png", "img0.txt", "img1.png", "img1.txt", "img2.png", "img2.txt"]
    assert list(work.iterdir()) == []           # the work folder is cleaned up
    assert trainer_processes(work) == []


def test_cancel_stops_the_trainer_and_keeps_what_was_saved(volume, work):
    stop = threading.Event()
    updates = []

    def progress(_job, payload):
        updates.append(payload)
        if payload["step"] >= 25:
            stop.set()

    started = time.monotonic()
    result = worker.handler(job(steps=2000, save_every=20), progress=progress, cancelled=stop.is_set,
                            run_cmd=STANDIN, volume_root=volume, work_root=work,
                            trainer_env={"STANDIN_STEP_SECONDS": "0.01"}, poll_s=0.05, progress_every_s=0.05)
    assert time.monotonic() - started < 15
    assert re.fullmatch(r"training cancelled at step \d+ of 2000", result["error"]), result["error"]
    assert any("/2000" in line for line in result["log_tail"])
    assert [c["step"] for c in result["checkpoints"]][:1] == [20]
    assert trainer_processes(work) == []


def test_timeout_stops_the_trainer(volume, work):
    result, _ = run(volume, work, job(steps=5000), step_s="0.02", timeout_s=1.0)
    # Under load the stand-in may still be loading when the second is up: "before the first step".
    assert re.fullmatch(r"training timed out after 1 s (at step \d+ of 5000|before the first step)", result["error"])
    assert trainer_processes(work) == []


def test_a_trainer_that_ignores_sigterm_is_killed(volume, work):
    started = time.monotonic()
    result, _ = run(volume, work, job(steps=5000), step_s="0.02", timeout_s=0.8, stop_grace_s=0.5,
                    env={"STANDIN_IGNORE_SIGTERM": "1"})
    assert "timed out" in result["error"]
    assert time.monotonic() - started < 10
    assert trainer_processes(work) == []


def test_a_trainer_crash_returns_the_error_with_the_log_tail(volume, work):
    result, _ = run(volume, work, job(steps=100, save_every=10), env={"STANDIN_CRASH_AT_STEP": "25"})
    headline = result["error"].splitlines()[0]
    assert headline == "AI Toolkit exited with code 1: Error running job: CUDA out of memory"
    assert any("CUDA out of memory. Tried to allocate" in line for line in result["log_tail"])
    assert "CUDA out of memory. Tried to allocate" in result["error"]     # the tail travels in `error` too
    assert [c["step"] for c in result["checkpoints"]] == [10, 20]
    assert "lora_path" not in result


@pytest.mark.parametrize("change, fragment", [
    ({"name": "../x"}, "input.name"),
    ({"trigger_word": " "}, "trigger_word"),
    ({"dataset_path": "/etc/passwd"}, "must be under /runpod-volume/datasets/"),
    ({"dataset_path": "/runpod-volume/datasets/../../etc"}, "without '..'"),
    ({"dataset_path": "/runpod-volume/datasets/ava/v9"}, "does not exist"),
    ({"output_path": "/runpod-volume/models/loras"}, "must be under /runpod-volume/loras/"),
    ({"config": {"job": "extension"}}, "config"),
])
def test_invalid_input_is_refused_before_anything_runs(volume, work, change, fragment):
    result, updates = run(volume, work, job(**change))
    assert result["error"].startswith("invalid input:") and fragment in result["error"], result["error"]
    assert updates == [] and not (volume / "loras").exists()


def test_a_dataset_without_images_is_refused(volume, work):
    empty = volume / "datasets" / "ava" / "v2"
    empty.mkdir()
    result, _ = run(volume, work, job(dataset_path="/runpod-volume/datasets/ava/v2"))
    assert result["error"] == "the training set /runpod-volume/datasets/ava/v2 holds no images"


def test_a_failing_progress_callback_still_stops_the_trainer(volume, work):
    class Stop(Exception):
        pass

    def progress(_job, payload):
        if payload["step"] >= 5:
            raise Stop()

    with pytest.raises(Stop):
        worker.handler(job(steps=3000), progress=progress, run_cmd=STANDIN, volume_root=volume, work_root=work,
                       trainer_env={"STANDIN_STEP_SECONDS": "0.01"}, poll_s=0.05, progress_every_s=0.05)
    assert trainer_processes(work) == []
    assert list(work.iterdir()) == []


def test_the_runpod_entry_point_stops_the_trainer_when_runpod_cancels_the_job(volume, work, monkeypatch):
    monkeypatch.setenv("AITK_RUN_CMD", " ".join(STANDIN))
    monkeypatch.setenv("RUNPOD_VOLUME_ROOT", str(volume))
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    seen: list[dict] = []
    monkeypatch.setattr(worker, "_default_progress", lambda _job, payload: seen.append(payload))

    async def scenario():
        task = asyncio.create_task(worker.serverless_handler(job(steps=5000)))
        while not seen or seen[-1]["step"] < 3:
            await asyncio.sleep(0.05)
        task.cancel()   # what the SDK does when RunPod signals cancel or execution timeout
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert trainer_processes(work) == []
    # What was trained so far is still on the volume.
    assert json.loads((volume / "loras" / "ava" / "run-1" / "loss.json").read_text())["loss"]


def test_run_command_and_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("AITK_RUN_CMD", raising=False)
    monkeypatch.delenv("AITK_CWD", raising=False)
    assert worker._run_command(None) == ["python", "/app/ai-toolkit/run.py"]
    monkeypatch.setenv("AITK_RUN_CMD", "python3 -u /opt/aitk/run.py")
    assert worker._run_command(None) == ["python3", "-u", "/opt/aitk/run.py"]
    toolkit = tmp_path / "ai-toolkit"
    toolkit.mkdir()
    assert worker._trainer_cwd(["python", str(toolkit / "run.py"), "c.yaml"], tmp_path) == toolkit
    assert worker._trainer_cwd(STANDIN, tmp_path) == tmp_path
    monkeypatch.setenv("AITK_CWD", "/srv/aitk")
    assert worker._trainer_cwd(STANDIN, tmp_path) == Path("/srv/aitk")


def test_importing_the_handler_starts_nothing():
    # As the Docker image has it: handler.py alone on the path. Starting the SDK's worker loop on
    # import would block here (it polls RunPod for jobs forever).
    code = "import handler; print(handler.handler.__name__, handler.serverless_handler.__name__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(worker.__file__).parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["handler", "serverless_handler"]


def test_ctrl_c_on_a_dev_worker_stops_the_trainer(volume, work, monkeypatch):
    # `python handler.py --rp_serve_api` in a terminal: Ctrl-C sends SIGINT to the worker, never to
    # the trainer (its own process group), so the worker must stop it or it trains on, orphaned.
    monkeypatch.setenv("AITK_RUN_CMD", " ".join(STANDIN))
    monkeypatch.setenv("RUNPOD_VOLUME_ROOT", str(volume))
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    seen: list[dict] = []
    monkeypatch.setattr(worker, "_default_progress", lambda _job, payload: seen.append(payload))
    interrupted = []

    async def scenario():
        task = asyncio.create_task(worker.serverless_handler(job(steps=5000)))
        while not seen or seen[-1]["step"] < 3:
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        return await task

    # What handled SIGINT before the job (uvicorn's graceful shutdown, in a dev worker) still gets it.
    before = signal.signal(signal.SIGINT, lambda sig, _frame: interrupted.append(sig))
    try:
        result = asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        signal.signal(signal.SIGINT, before)
    assert re.fullmatch(r"training cancelled at step \d+ of 5000", result["error"]), result["error"]
    assert interrupted == [signal.SIGINT]
    assert trainer_processes(work) == []


def test_a_run_resumes_from_a_checkpoint_of_an_earlier_run(volume, work):
    first, _ = run(volume, work, job(steps=60, save_every=20, output_path="/runpod-volume/loras/ava/run-0"))
    checkpoint = next(c["path"] for c in first["checkpoints"] if c["step"] == 40)
    result, updates = run(volume, work, job(steps=60, save_every=20, resume_from=checkpoint))
    assert "error" not in result, result
    assert [s for s, _ in result["loss"]] == list(range(41, 60))     # AI Toolkit went on from step 40
    assert {s["step"] for s in result["samples"]} == {60}              # no baseline round on a resume
    assert updates[0]["step"] in (0, 40) and max(u["step"] for u in updates) >= 41


def test_resume_from_must_be_a_checkpoint_on_the_volume(volume, work):
    result, _ = run(volume, work, job(resume_from="/runpod-volume/loras/ava/run-0/ava.safetensors"))
    assert result["error"].startswith("invalid input: input.resume_from must be an existing checkpoint")
