"""Benchmark: the Costs page's aggregations over 1,000,000 job records (target < 1 s).

Builds a synthetic jobs frame (the store's jobs_frame shape, worker ids included) spread over
30 days on the three endpoints of console.toml, plus 30 days of hourly billing for them, then
times lib.costs.analyse (everything the page computes) and each function on its own, as the
median of 5 runs (wall clock, and CPU time of the process). Prints name=value lines:

    /tmp/venv/bin/python bench/bench_costs.py [--rows 1000000] [--runs 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.config import ConsoleConfig  # noqa: E402
from lib.costs import (  # noqa: E402
    analyse,
    break_even,
    compare_options,
    job_costs,
    project_next_month,
    recommend_scaling,
    reconcile,
    rollup,
    spend_over_time,
)
from lib.runpod.models import BillingRecord  # noqa: E402

DAYS = 30
KINDS = {"image": ["flux", "zimage", "sdxl", "warmup"], "training": ["lora"],
         "special": ["faceswap", "sheet"]}
SHARE = {"image": 0.80, "training": 0.02, "special": 0.18}
EXEC_S = {"image": (4, 20), "training": (600, 3600), "special": (6, 30)}


def synthetic_jobs(config: ConsoleConfig, rows: int, end: pd.Timestamp, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    roles = np.array(list(SHARE))
    role = rng.choice(roles, rows, p=list(SHARE.values()))
    kind = np.empty(rows, dtype=object)
    execution = np.empty(rows)
    for r in roles:
        mine = role == r
        kind[mine] = rng.choice(KINDS[r], mine.sum())
        lo, hi = EXEC_S[r]
        execution[mine] = rng.uniform(lo, hi, mine.sum()) * 1000
    cold = rng.random(rows) < 0.08
    delay = np.where(cold, rng.uniform(20_000, 120_000, rows), rng.uniform(50, 3_000, rows))
    submitted = end - pd.to_timedelta(np.sort(rng.uniform(0, DAYS * 86_400, rows))[::-1], unit="s")
    status = rng.choice(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"], rows,
                        p=[0.95, 0.03, 0.01, 0.01])
    images = np.where((role != "training") & (status == "COMPLETED"), rng.integers(1, 5, rows), 0)
    endpoint = pd.Series(role).map({r: config.endpoint(r).id for r in roles}).to_numpy()
    return pd.DataFrame({
        "local_id": [f"job-{i:07d}" for i in range(rows)],
        "role": role, "endpoint_id": endpoint, "status": status, "kind": kind,
        "user": rng.choice([f"user{i}@example.com" for i in range(25)], rows),
        "character": rng.choice([f"character-{i}" for i in range(60)] + [None], rows),
        "group": None, "submitted_at": submitted.astype("datetime64[ns, UTC]"),
        "delay_ms": delay, "execution_ms": np.round(execution), "images": images.astype("int64"),
        "cold_start": cold, "cost_usd": np.nan, "simulated": True,
        "worker_id": np.char.add(role.astype(str), rng.integers(0, 40, rows).astype(str)),
    })


def synthetic_billing(config: ConsoleConfig, end: pd.Timestamp) -> list[BillingRecord]:
    rng = np.random.default_rng(11)
    start = end - pd.Timedelta(days=DAYS)
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    records = []
    for role, spec in config.endpoints.items():
        for hour in hours:
            gpu = float(rng.uniform(0.2, 3.0)) * (5 if role == "training" else 1)
            disk = gpu * 0.0025
            records.append(BillingRecord(start=hour.to_pydatetime(),
                                         end=(hour + timedelta(hours=1)).to_pydatetime(),
                                         total=gpu + disk, gpu=gpu, disk=disk, serverless_id=spec.id))
    return records


def median_time(fn, runs: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    config = ConsoleConfig.load(ROOT / "console.toml")
    end = pd.Timestamp.now(tz="UTC").floor("h")
    jobs = synthetic_jobs(config, args.rows, end)
    billing = synthetic_billing(config, end)
    costed = job_costs(jobs, config)
    options = compare_options(costed, config, 30)

    steps = {
        "job_costs": lambda: job_costs(jobs, config),
        "rollups": lambda: [rollup(costed, by) for by in ("endpoint", "workload", "character", "user", "day")],
        "spend_over_time": lambda: spend_over_time(billing, "day"),
        "reconcile": lambda: reconcile(costed, billing, config),
        "compare_options": lambda: compare_options(costed, config, 30),
        "break_even": lambda: break_even(options.cost_per_image_usd, options.pod_monthly_usd,
                                         fixed_monthly_usd=options.serverless_fixed_monthly_usd,
                                         current_images_per_month=options.images_per_month),
        "projection": lambda: project_next_month(billing),
        "recommend_scaling": lambda: recommend_scaling(costed, config, 30),
    }
    run_all = lambda: analyse(jobs, billing, config, bucket="day", days=30)  # noqa: E731
    total = median_time(run_all, args.runs)
    # CPU time of this process: the same figure, less the noise of other work on the machine
    cpu = median_time(run_all, args.runs, clock=time.process_time)
    print(f"rows={len(jobs)}")
    print(f"billing_records={len(billing)}")
    print(f"costs_aggregations_1m_s={total:.3f}")
    print(f"costs_aggregations_1m_cpu_s={cpu:.3f}")
    for name, fn in steps.items():
        print(f"{name}_s={median_time(fn, args.runs):.4f}")


if __name__ == "__main__":
    main()
