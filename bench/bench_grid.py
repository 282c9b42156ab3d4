"""Benchmark: a 24-cell LoRA comparison grid on 4 warm simulated `image` workers.

Starts LocalPod in-process at time_scale=1 (simulated seconds are real seconds), sets the image
endpoint to exactly 4 workers through the REST API, waits until all 4 are idle (warm), then submits
the 24 cells of a 4 LoRA-strength × 6 seed Z-Image Turbo grid at once through the console's RunPod
client and waits for all of them.

Prints name=value lines:
  grid_makespan_s    first submit → last job seen COMPLETED (client-side wall clock)
  grid_ideal_s       cells × median executionTime ÷ workers
  grid_overhead_pct  (makespan − ideal) ÷ ideal × 100   — target: ≤ 10
The cold start used while warming the workers is shortened to 5 s: it is not part of the
measurement (the workers are warm before the first cell is sent), only of the wait before it.

Run: python -m bench.bench_grid   (or python bench/bench_grid.py) from the repository root.
"""
from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.config import ConsoleConfig  # noqa: E402
from lib.grid import GridAxis, plan_grid  # noqa: E402
from lib.localpod.server import LocalPod  # noqa: E402
from lib.runpod import JobStatus, RunPod  # noqa: E402
from lib.workflows import build_payload, load_template  # noqa: E402

WORKERS = 4
SEEDS = [101, 202, 303, 404, 505, 606]
STRENGTHS = [0.4, 0.7, 1.0, 1.3]
WARM_TIMEOUT_S = 120
RUN_TIMEOUT_S = 600
POLL_S = 0.05
MODEL_FILES = ("models/unet/z_image_turbo_bf16.safetensors", "models/clip/qwen_3_4b.safetensors",
               "models/vae/ae.safetensors", "models/loras/ava_v1.safetensors")


def wait_for_idle_workers(client: RunPod, endpoint_id: str, count: int) -> None:
    deadline = time.monotonic() + WARM_TIMEOUT_S
    while time.monotonic() < deadline:
        if client.rest.workers(endpoint_id).idle >= count:
            return
        time.sleep(0.25)
    raise SystemExit(f"bench_grid: {count} idle workers did not appear within {WARM_TIMEOUT_S} s")


def main() -> None:
    config = ConsoleConfig.load(ROOT / "console.toml")
    # Only the warm-up gets shorter; job execution runs at full simulated length (time_scale=1).
    pod_table = copy.deepcopy(dict(config.raw))
    pod_table.setdefault("simulator", {}).setdefault("cold_start_s", {})["image"] = 5.0
    endpoint_id = config.endpoint("image").id
    template = load_template("z_image_turbo_lora")
    cells = plan_grid(GridAxis("seed", SEEDS), GridAxis("lora_strength", STRENGTHS),
                      {"prompt": "ava_tok, portrait on a harbour at golden hour, cinematic close-up",
                       "lora_name": "ava_v1.safetensors", "width": 1024, "height": 1024})
    inputs = [build_payload(template, cell.params, job_tag=f"bench{i:02}")["input"]
              for i, cell in enumerate(cells)]

    with tempfile.TemporaryDirectory(prefix="bench-grid-") as data:
        pod = LocalPod(Path(data), pod_table, time_scale=1.0, seed_demo=False).start()
        try:
            for key in MODEL_FILES:
                path = pod.volume_dir / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"simulated weights")
            with RunPod(api_key="bench", api_url=pod.api_url, rest_url=pod.rest_url) as client:
                client.rest.update_endpoint(endpoint_id, workers_min=WORKERS, workers_max=WORKERS)
                wait_for_idle_workers(client, endpoint_id, WORKERS)
                jobs = client.endpoint(endpoint_id)

                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=len(inputs)) as pool:
                    submitted = list(pool.map(jobs.run, inputs))
                pending = {job.id for job in submitted}
                finished = {}
                deadline = started + RUN_TIMEOUT_S
                while pending and time.monotonic() < deadline:
                    for job_id in list(pending):
                        job = jobs.status(job_id)
                        if job.is_terminal:
                            finished[job_id] = job
                            pending.discard(job_id)
                    if pending:
                        time.sleep(POLL_S)
                makespan = time.monotonic() - started
        finally:
            pod.stop()

    if pending:
        raise SystemExit(f"bench_grid: {len(pending)} jobs did not finish within {RUN_TIMEOUT_S} s")
    failed = [j for j in finished.values() if j.status is not JobStatus.COMPLETED]
    if failed:
        raise SystemExit(f"bench_grid: {len(failed)} jobs ended {failed[0].status}: {failed[0].error}")
    median_s = statistics.median(j.execution_time_ms for j in finished.values()) / 1000
    ideal = len(cells) * median_s / WORKERS
    workers_used = len({j.worker_id for j in finished.values()})
    print(f"grid_cells={len(cells)}")
    print(f"grid_workers={WORKERS}")
    print(f"grid_workers_used={workers_used}")
    print(f"grid_median_execution_s={median_s:.3f}")
    print(f"grid_makespan_s={makespan:.3f}")
    print(f"grid_ideal_s={ideal:.3f}")
    print(f"grid_overhead_pct={(makespan - ideal) / ideal * 100:.1f}")


if __name__ == "__main__":
    main()
