"""Soak benchmark: thousands of jobs through the console's Tracker, memory must stay flat.

Starts `python -m lib.localpod` as a subprocess (so this process's memory is the console's only),
with an extra endpoint `basic` whose jobs run localpod's configurable `basic` handler, then
submits jobs at a steady rate through Tracker.submit (store first, then /run) while the tracker
thread follows them. RSS (VmRSS of /proc/self/status) is sampled every few seconds. At the end
every job must be COMPLETED with its own output, and the simulator must hold exactly one job per
submission. Prints name=value lines:

    soak_jobs  soak_duration_s  soak_rss_start_mb  soak_rss_end_mb  soak_rss_max_mb
    soak_rss_slope_mb_per_min (least-squares fit over the second half of the samples)
    soak_lost_jobs (not COMPLETED with their own output)  soak_duplicate_jobs (extra jobs on RunPod)
    and context: soak_submit_rate_per_s, soak_completed, soak_failed, soak_p50_latency_ms, ...

Two faults of the console's own machine are staged mid-run (durability, issue 13): at one third of
the submission period another process holds the store's lock (BEGIN EXCLUSIVE) for --store-lock-s
seconds, and at two thirds the disk holding CONSOLE_DATA is full for --enospc-s seconds (CONSOLE_DATA
is a small tmpfs filled with a ballast file: that needs root; otherwise soak_enospc_staged=0 says it
was not staged). A submission the full disk refuses is retried under the same idempotency key, as a
person clicks again. Their figures: soak_store_lock_s, soak_enospc_staged, soak_enospc_s,
soak_degraded_samples (health samples showing the fault), soak_submit_retries.

    python bench/bench_soak.py [--minutes 10] [--jobs 2000] [--sleep-ms 40] [--workers 8]
                               [--store-lock-s 8] [--enospc-s 5]
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from lib.config import ConsoleConfig  # noqa: E402
from lib.runpod import RunPod  # noqa: E402
from lib.services import jobs_at  # noqa: E402
from lib.store import JobStore, StoreUnavailable  # noqa: E402
from lib.tracker import Tracker  # noqa: E402
from tests.faults.breakers import store_locked_by_another_process  # noqa: E402

READY_PREFIX = "localpod ready on "
USER = "soak@localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute; 0 for fewer than two samples."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / var * 60


def write_config(folder: Path, workers: int) -> Path:
    text = (ROOT / "console.toml").read_text(encoding="utf-8") + f"""
[endpoints.basic]
id = "basic-soak"
name = "console-basic"
gpu_pools = ["ADA_24"]
workers_max = {workers}
idle_timeout_s = 60
"""
    path = folder / "console.toml"
    path.write_text(text, encoding="utf-8")
    return path


def start_localpod(data_dir: Path, config: Path, key: str, time_scale: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib.localpod", "--host", "127.0.0.1", "--port", str(free_port()),
         "--data", str(data_dir), "--no-seed", "--api-key", key, "--config", str(config),
         "--time-scale", str(time_scale)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline().strip()
    if not line.startswith(READY_PREFIX):
        proc.kill()
        raise SystemExit(f"localpod did not start: {line!r}")
    return proc, line[len(READY_PREFIX):]


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int = 256):
    """A tmpfs mounted at `path` (True), or a plain folder when mounting is not allowed (False)."""
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                             capture_output=True, check=False).returncode == 0 if os.geteuid() == 0 else False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(ballast: Path) -> None:
    with open(ballast, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 1_048_576)
                fh.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


class Faults(threading.Thread):
    """Stages the store lock and the full disk mid-run and samples tracker health meanwhile."""

    def __init__(self, tracker: Tracker, period_s: float, lock_s: float, enospc_s: float, disk: Path | None):
        super().__init__(name="soak-faults", daemon=True)
        self.tracker, self.period_s, self.lock_s, self.enospc_s, self.disk = tracker, period_s, lock_s, enospc_s, disk
        self.degraded_samples = 0
        self.t0 = time.monotonic()

    def _sample_while(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.degraded_samples += self.tracker.health().degraded
            time.sleep(0.25)

    def run(self) -> None:
        if self.lock_s > 0:
            time.sleep(max(0.0, self.t0 + self.period_s / 3 - time.monotonic()))
            with store_locked_by_another_process(self.tracker.store.path, self.lock_s):
                self._sample_while(self.lock_s)
        if self.enospc_s > 0 and self.disk is not None:
            time.sleep(max(0.0, self.t0 + self.period_s * 2 / 3 - time.monotonic()))
            ballast = self.disk / "ballast"
            fill_disk(ballast)
            try:
                self._sample_while(self.enospc_s)
            finally:
                ballast.unlink()


class Sampler(threading.Thread):
    def __init__(self, every_s: float, t0: float):
        super().__init__(name="rss-sampler", daemon=True)
        self.every_s = every_s
        self.t0 = t0
        self.samples: list[tuple[float, float]] = [(0.0, rss_mb())]
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.samples.append((time.monotonic() - self.t0, rss_mb()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="submission period (default 10)")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to submit (default 2000)")
    parser.add_argument("--sleep-ms", type=int, default=40, help="work per job in the handler (default 40)")
    parser.add_argument("--workers", type=int, default=8, help="max workers of the endpoint (default 8)")
    parser.add_argument("--time-scale", type=float, default=0.002,
                        help="simulator seconds compression (default 0.002: a 120 s cold start is 0.24 s)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period (default 5)")
    parser.add_argument("--store-lock-s", type=float, default=8.0,
                        help="another process locks the store this long at 1/3 of the run (default 8; 0: off)")
    parser.add_argument("--enospc-s", type=float, default=5.0,
                        help="the disk of CONSOLE_DATA is full this long at 2/3 of the run (default 5; 0: off)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.minutes <= 0:
        parser.error("--jobs must be >= 1 and --minutes > 0")

    key = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        tmp_path = Path(tmp)
        config_path = write_config(tmp_path, args.workers)
        config = ConsoleConfig.load(config_path, any_role=True)   # the bench endpoint `basic` is no console role
        proc, url = start_localpod(tmp_path / "localpod", config_path, key, args.time_scale)
        client = RunPod(key, api_url=f"{url}/v2", rest_url=f"{url}/rest/v2")
        with small_disk(tmp_path / "data") as on_tmpfs:
            store = JobStore(tmp_path / "data" / "console")
            tracker = Tracker(store, config, lambda role: client.for_spec(config.endpoint(role)),
                              jobs_at=jobs_at(client)).start()
            faults = Faults(tracker, args.minutes * 60, args.store_lock_s, args.enospc_s,
                            tmp_path / "data" if on_tmpfs else None)
            try:
                return run(args, url, key, tracker, store, faults)
            finally:
                tracker.stop()
                store.close()
                client.close()
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def submit_retrying(tracker: Tracker, i: int, sleep_ms: int) -> tuple[object, int]:
    """Submit job i; a store that refuses it (full disk, lock) is asked again under the same key."""
    retries = 0
    while True:
        try:
            return tracker.submit("basic", {"sleep_ms": sleep_ms, "echo": i}, kind="soak", user=USER,
                                  idempotency_key=f"soak-{i}"), retries
        except StoreUnavailable:
            retries += 1
            time.sleep(0.5)


def run(args, url: str, key: str, tracker: Tracker, store: JobStore, faults: Faults) -> int:
    interval = args.minutes * 60 / args.jobs
    t0 = time.monotonic()
    sampler = Sampler(args.sample_s, t0)
    sampler.start()
    faults.start()
    local_ids: list[str] = []
    submit_errors = submit_retries = 0
    for i in range(args.jobs):
        # Paced against the start time so that a slow submit does not shift every later one.
        pause = t0 + i * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            record, retried = submit_retrying(tracker, i, args.sleep_ms)
            submit_retries += retried
        except Exception as exc:  # counted as lost below; the soak goes on
            submit_errors += 1
            print(f"# submit {i} failed: {exc}", file=sys.stderr)
            continue
        local_ids.append(record.local_id)
    submitted_s = time.monotonic() - t0
    faults.join()
    try:
        records = tracker.wait_for(local_ids, timeout_s=120)
    except TimeoutError as exc:
        print(f"# {exc}", file=sys.stderr)
        records = [store.get(i) for i in local_ids]
    duration = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    samples = sampler.samples + [(duration, rss_mb())]

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as admin:
        on_runpod = admin.get("/admin/jobs", params={"endpoint_id": "basic-soak"}).json()["jobs"]
    ok = [r for r in records if r.status == "COMPLETED" and isinstance(r.output, dict)
          and r.output.get("echo") == int(r.idempotency_key.removeprefix("soak-"))]
    lost = args.jobs - len(ok)
    # Every submission carries its own echo value: two simulator jobs with one value = a duplicate.
    echoes = [job["output"].get("echo") if isinstance(job.get("output"), dict) else job["id"]
              for job in on_runpod]
    duplicates = len(echoes) - len(set(echoes))
    latencies = sorted((r.finished_at - r.created_at).total_seconds() * 1000 for r in records
                       if r.finished_at is not None)
    second_half = [s for s in samples if s[0] >= duration / 2]

    figures = {
        "soak_jobs": args.jobs,
        "soak_duration_s": round(duration, 1),
        "soak_submit_period_s": round(submitted_s, 1),
        "soak_submit_rate_per_s": round(args.jobs / submitted_s, 2),
        "soak_completed": sum(r.status == "COMPLETED" for r in records),
        "soak_failed": sum(r.status != "COMPLETED" for r in records) + submit_errors,
        "soak_p50_latency_ms": round(latencies[len(latencies) // 2]) if latencies else "n/a",
        "soak_p99_latency_ms": round(latencies[int(len(latencies) * 0.99) - 1]) if latencies else "n/a",
        "soak_rss_samples": len(samples),
        "soak_rss_start_mb": round(samples[0][1], 1),
        "soak_rss_end_mb": round(samples[-1][1], 1),
        "soak_rss_max_mb": round(max(m for _, m in samples), 1),
        "soak_rss_slope_mb_per_min": round(slope_per_min(second_half), 3),
        "soak_lost_jobs": lost,
        "soak_duplicate_jobs": duplicates,
        "soak_runpod_jobs": len(on_runpod),
        "soak_store_lock_s": args.store_lock_s,
        "soak_enospc_staged": int(faults.disk is not None and args.enospc_s > 0),
        "soak_enospc_s": args.enospc_s if faults.disk is not None else 0,
        "soak_degraded_samples": faults.degraded_samples,
        "soak_submit_retries": submit_retries,
    }
    for name, value in figures.items():
        print(f"{name}={value}")
    return 0 if lost == 0 and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
