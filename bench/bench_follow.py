"""Follow benchmark (issue 18, goal 4): one console's tracker follows 2,000 jobs in flight (a batch
for a dataset) and must see each completion within 2 s (p95) of RunPod finishing it, while staying
under RunPod's documented /status limit (2,000 requests per 10 s per endpoint, reference §1.7;
the simulator enforces it with 429s).

Starts `python -m lib.localpod` as a subprocess with an extra endpoint `basic` (localpod's `basic`
handler), submits --jobs jobs at once through Tracker.submit, and lets the tracker thread follow
them. Every HTTP request the console's client sends is counted by path (and 429 replies). The lag
of a job = when the console's store recorded it final − the simulator's own finished_at. Prints:

    follow_jobs  follow_status_requests_per_job  follow_requests_per_job (all job API calls)
    follow_seen_lag_p50_s  follow_seen_lag_p95_s  follow_status_peak_per_10s  follow_429s (all job API calls)
    follow_429s_on_status  follow_duration_s

    python bench/bench_follow.py [--jobs 2000] [--workers 40] [--sleep-ms 1000]
"""
from __future__ import annotations

import argparse
import collections
import json
import secrets
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_soak import start_localpod, write_config
from harness import emit, load_average, percentile

from lib.config import ConsoleConfig
from lib.runpod import RunPod
from lib.store import JobStore
from lib.tracker import Tracker

_counts: collections.Counter = collections.Counter()
_status_times: list[float] = []
_lock = threading.Lock()
_send = httpx.Client.send


def _counting_send(self, request, *args, **kwargs):
    response = _send(self, request, *args, **kwargs)
    path = request.url.path
    operation = "status" if "/status/" in path else path.rsplit("/", 1)[-1]
    with _lock:
        _counts[operation] += 1
        if response.status_code == 429:
            _counts["429"] += 1
            _counts[f"429 {operation}"] += 1
        if operation == "status":
            _status_times.append(time.monotonic())
    return response


def peak_per_window(times: list[float], window_s: float = 10.0) -> int:
    times, peak, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window_s:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--sleep-ms", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=0.002)
    args = parser.parse_args()
    key = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="follow-") as tmp:
        folder = Path(tmp)
        config_path = write_config(folder, args.workers)
        config = ConsoleConfig.load(config_path, any_role=True)   # the bench endpoint `basic` is no console role
        proc, url = start_localpod(folder / "localpod", config_path, key, args.time_scale)
        client = RunPod(key, api_url=f"{url}/v2", rest_url=f"{url}/rest/v2")
        store = JobStore(folder / "console")
        tracker = Tracker(store, config, lambda role: client.for_spec(config.endpoint(role))).start()
        httpx.Client.send = _counting_send
        try:
            started = time.monotonic()
            ids = [tracker.submit("basic", {"sleep_ms": args.sleep_ms, "echo": i}, kind="follow",
                                  user="bench@localhost", idempotency_key=f"follow-{i}").local_id
                   for i in range(args.jobs)]
            records = tracker.wait_for(ids, timeout_s=3600)
            duration = time.monotonic() - started
        finally:
            httpx.Client.send = _send
            tracker.stop()
            store.close()
            client.close()
            proc.terminate()
            proc.wait(timeout=20)
        # The simulator's own record of each job (its state file), finished_at included.
        with sqlite3.connect(folder / "localpod" / "localpod.sqlite") as sim:
            on_runpod = {i: json.loads(d) for i, d in sim.execute("SELECT id, data FROM jobs")}
    lags = [r.finished_at.timestamp() - on_runpod[r.runpod_id]["finished_at"] for r in records
            if r.runpod_id in on_runpod and on_runpod[r.runpod_id].get("finished_at") and r.finished_at]
    job_api = sum(v for k, v in _counts.items() if k in ("status", "run", "runsync", "stream", "cancel"))
    emit("follow_jobs", len(records))
    emit("follow_completed", sum(r.status == "COMPLETED" for r in records))
    emit("follow_status_requests_per_job", _counts["status"] / len(records))
    emit("follow_requests_per_job", job_api / len(records))
    emit("follow_seen_lag_p50_s", percentile(lags, 50))
    emit("follow_seen_lag_p95_s", percentile(lags, 95))
    emit("follow_status_peak_per_10s", peak_per_window(_status_times))
    emit("follow_429s", _counts["429"])
    emit("follow_429s_on_status", _counts["429 status"])
    emit("follow_duration_s", duration)
    emit("follow_load_avg_1m", load_average())


if __name__ == "__main__":
    main()
