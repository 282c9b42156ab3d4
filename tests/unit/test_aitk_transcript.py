"""The worker against a recorded AI Toolkit run: its real bar sequence and loss_log.db, not the
stand-in's. The transcript (aitk_transcript/ava_10_steps.txt) is composed from AI Toolkit's own
code; replay.py plays it back in place of run.py, writing loss_log.db, checkpoints and samples at
the moments AI Toolkit does."""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

from workers.lora_trainer import handler as worker

from .test_lora_trainer_handler import job, make_dataset, trainer_processes

HERE = Path(__file__).with_name("aitk_transcript")
REPLAY = [sys.executable, str(HERE / "replay.py"), str(HERE / "ava_10_steps.txt")]
# What loss_log.db holds, at full precision; the bar shows these with 4 digits.
DB_LOSS = {1: 0.41023456789, 2: 0.39871234, 3: 0.3712001, 4: 0.35220417, 5: 0.33017773, 6: 0.31100016,
           7: 0.29933318, 8: 0.28871113, 9: 0.27702229}


@pytest.fixture
def volume(tmp_path):
    root = tmp_path / "volume"
    make_dataset(root)
    return root


def replay(volume, work, *, cancelled=None, hold_at=None):
    updates: list[dict] = []
    result = worker.handler(job(steps=10, save_every=5, sample_every=5), run_cmd=REPLAY,
                            progress=lambda _j, p: updates.append(json.loads(json.dumps(p))),
                            cancelled=cancelled, volume_root=volume, work_root=work,
                            trainer_env={"REPLAY_HOLD_AT": hold_at or ""},
                            poll_s=0.01, progress_every_s=0.0, stop_grace_s=2.0)
    return result, updates


def test_progress_follows_the_training_bar_and_the_loss_log(volume, tmp_path):
    result, updates = replay(volume, tmp_path)
    assert "error" not in result, result

    # The step comes from the training bar only: the shard, dataset scan (20/20), caching (20/20)
    # and sampling (2/2) bars never show as training progress.
    assert all(u["total_steps"] == 10 for u in updates)
    steps = [u["step"] for u in updates]
    assert steps == sorted(steps) and set(steps) <= set(range(11))
    before_training = list(itertools.takewhile(lambda u: u["phase"] != "training", updates))
    assert before_training and all(u["step"] == 0 and u["eta_s"] is None for u in before_training)

    # The phase says what the worker is doing, in AI Toolkit's order.
    phases = [p for p, _ in itertools.groupby(u["phase"] for u in updates)]
    assert phases[:3] == ["loading", "caching latents", "sampling"]
    assert phases[3] == "training"
    assert "saving" in phases and phases.index("saving") < len(phases) - 1
    assert phases[-2:] == ["sampling", "saving"] or phases[-1] == "sampling"
    during_in_loop_sampling = [u for u in updates if u["phase"] == "sampling" and 0 < u["step"] < 10]
    assert during_in_loop_sampling and {u["step"] for u in during_in_loop_sampling} == {5}

    # The loss is loss_log.db's "loss/loss" at full precision, never the bar's 4 digits.
    assert result["loss"] == [[s, v] for s, v in sorted(DB_LOSS.items())]
    assert {v for _, v in result["learning_rate"]} == {1e-4}
    # Step 0 is never logged (AI Toolkit logs from the second step on): until the first row, the
    # bar's text is all there is.
    logged = [u for u in updates if u["step"] >= 1]
    assert logged and all(u["loss"] in DB_LOSS.values() for u in logged)
    assert all(u["loss"] == DB_LOSS[u["step"]] for u in logged if u["phase"] == "training")

    training = [u for u in updates if u["phase"] == "training" and u["speed"]]
    assert training and all(u["speed"] == pytest.approx(0.5) for u in training)
    assert any(u["eta_s"] == 2 * (10 - u["step"]) for u in training)

    # AI Toolkit's file names: checkpoints by step, the final file last; samples per round.
    assert [c["step"] for c in result["checkpoints"]] == [5, 10]
    assert result["lora_path"].endswith("/ava.safetensors")
    assert sorted({s["step"] for s in result["samples"]}) == [0, 5, 10]
    assert {s["prompt"] for s in result["samples"]} == {"ava_tok portrait", "ava_tok in snow"}

    # The log tail the page shows: the trainer's lines, one per bar rather than one per redraw.
    tail = updates[-1]["log_tail"]
    assert tail and all("\x1b" not in line and "\r" not in line for line in tail)
    assert not any(a.startswith("ava:") and b.startswith("ava:") for a, b in itertools.pairwise(tail))
    assert any("Saving at step 5" in line for u in updates for line in u["log_tail"])


def test_a_cancel_while_sampling_reports_the_training_step(volume, tmp_path):
    # The recorded run holds in its step-5 sampling round; the cancel comes once the worker has
    # copied the step-5 checkpoint, i.e. while AI Toolkit samples with its bar still at 4/10.
    step5 = volume / "loras" / "ava" / "run-1" / "ava_000000005.safetensors"
    result, _ = replay(volume, tmp_path, hold_at="sampling-at-step-5", cancelled=step5.exists)
    assert result["error"] == "training cancelled at step 5 of 10"
    assert any(line.startswith("Saving at step 5") for line in result["log_tail"])
    assert [c["step"] for c in result["checkpoints"]] == [5]
    assert trainer_processes(tmp_path) == []
