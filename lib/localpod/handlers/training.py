"""The simulated `training` endpoint: the real worker handler (workers/lora_trainer/handler.py)
driving the stand-in trainer instead of AI Toolkit's run.py.

So the local flow exercises the same input checks, YAML writing, progress parsing, checkpoint
copying and cancellation as the deployed worker; only the GPU work is simulated. Paths in the
job (/runpod-volume/…) are mapped to the simulator's volume folder.
"""
from __future__ import annotations

import sys
from pathlib import Path

from lib.localpod.handlers import JobCancelled, JobContext, register
from workers.lora_trainer import handler as worker

STANDIN_TRAINER = Path(worker.__file__).with_name("standin_trainer.py")
# Simulated seconds per training step. Far quicker than a real GPU (≈1–1.5 s/step, see
# lib/training/config.py) on purpose: at the demo time_scale of 0.05 a 1,000-step run takes
# ~15 s of real time, long enough to watch progress, short enough for a demo.
SIM_SECONDS_PER_STEP = 0.3


@register("training")
def handle(job: dict, ctx: JobContext) -> dict:
    step_s = SIM_SECONDS_PER_STEP * ctx.time_scale
    result = worker.handler(
        job,
        progress=lambda _job, payload: ctx.progress(payload),
        cancelled=lambda: ctx.cancelled,
        run_cmd=[sys.executable, str(STANDIN_TRAINER)],
        volume_root=ctx.volume_dir,
        trainer_env={"STANDIN_STEP_SECONDS": f"{step_s:.6f}"},
        poll_s=0.1,
        progress_every_s=0.5,
        stop_grace_s=5.0,
    )
    if ctx.cancelled:
        # The worker stopped its trainer and saved what it could; the job itself ends the way
        # RunPod ends a cancelled or timed-out one.
        raise JobCancelled(f"training job {ctx.job_id} was cancelled or timed out")
    return result
