"""Client overhead: our RunPod client vs the official runpod SDK, against the local simulator.

    /tmp/venv/bin/python bench/bench_client_overhead.py [--jobs 100] [--sleep-ms 300]

Starts `python -m lib.localpod --time-scale 1` on a free port with the repo's console.toml plus
one `basic` endpoint (the simulator's configurable worker: {"sleep_ms": n} sleeps n real ms; the
image role's simulated worker-comfyui would refuse an input without a workflow), makes 10 warm
workers on it, then runs N concurrent jobs with each client from N threads:

  ours: RunPod.endpoint(id).run_and_wait(input, timeout_s=60)   (one /runsync held until done)
  sdk:  runpod.Endpoint(id).run(input) + job.output(timeout=60)  (/run, then /status every 1 s)

Per job: client overhead = end-to-end wall time − delayTime − executionTime (as RunPod reports
them). Requests are counted with an httpx event hook (ours) and a requests response hook (SDK).
Prints name=value lines.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.runpod import JobStatus, RunPod  # noqa: E402

KEY = "bench-key"
ENDPOINT = "basic-sim01"
WARM_WORKERS = 10
BASIC_ENDPOINT = f"""
[endpoints.basic]
id = "{ENDPOINT}"
name = "bench-basic"
gpu_pools = ["ADA_24"]
workers_max = {WARM_WORKERS}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_config(folder: Path) -> Path:
    text = (ROOT / "console.toml").read_text(encoding="utf-8")
    # A short cold start for the bench endpoint: at --time-scale 1 the default would take minutes.
    marker = "[simulator.cold_start_s]\n"
    if marker in text:
        text = text.replace(marker, marker + "basic = 5\n")
    path = folder / "bench.toml"
    path.write_text(text + BASIC_ENDPOINT, encoding="utf-8")
    return path


def start_simulator(data: Path, port: int, config: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib.localpod", "--port", str(port), "--data", str(data), "--no-seed",
         "--time-scale", "1", "--api-key", KEY, "--config", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "localpod ready on" in line:
            # Keep draining its output so a chatty simulator never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the simulator did not start (exit code {proc.poll()})")


def warm_up(client: RunPod) -> None:
    client.rest.update_endpoint(ENDPOINT, workers_min=WARM_WORKERS, workers_max=WARM_WORKERS)
    jobs = client.endpoint(ENDPOINT)
    deadline = time.monotonic() + 120
    while jobs.health().workers.idle < WARM_WORKERS:
        if time.monotonic() > deadline:
            raise SystemExit("the warm workers did not become ready within 120 s")
        time.sleep(0.2)


def overhead_ms(wall_s: float, delay_ms: int | None, execution_ms: int | None) -> float:
    return wall_s * 1000 - (delay_ms or 0) - (execution_ms or 0)


def run_ours(api_url: str, rest_url: str, n: int, job_input: dict) -> tuple[list[float], float]:
    sent = []
    lock = threading.Lock()

    def count(request):
        with lock:
            sent.append(1)

    with RunPod(KEY, api_url=api_url, rest_url=rest_url, event_hooks={"request": [count]}) as client:
        jobs = client.endpoint(ENDPOINT)

        def one(_):
            start = time.perf_counter()
            job = jobs.run_and_wait(job_input, timeout_s=60)
            wall = time.perf_counter() - start
            if job.status is not JobStatus.COMPLETED:
                raise SystemExit(f"ours: job {job.id} ended {job.status}: {job.error}")
            return overhead_ms(wall, job.delay_time_ms, job.execution_time_ms)

        jobs.run_and_wait(job_input, timeout_s=60)  # open the pool's first connection
        sent.clear()
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(one, range(n)))
    return results, len(sent) / n


def run_sdk(api_url: str, timings: RunPod, n: int, job_input: dict) -> tuple[list[float], float]:
    import runpod

    runpod.api_key = KEY
    runpod.endpoint_url_base = api_url
    endpoint = runpod.Endpoint(ENDPOINT)
    sent = []
    lock = threading.Lock()

    def count(response, *args, **kwargs):
        with lock:
            sent.append(1)

    endpoint.rp_client.rp_session.hooks["response"].append(count)

    def one(_):
        start = time.perf_counter()
        job = endpoint.run(job_input)
        job.output(timeout=60)
        wall = time.perf_counter() - start
        final = timings.endpoint(ENDPOINT).status(job.job_id)  # not counted: the SDK drops these fields
        if final.status is not JobStatus.COMPLETED:
            raise SystemExit(f"sdk: job {job.job_id} ended {final.status}: {final.error}")
        return overhead_ms(wall, final.delay_time_ms, final.execution_time_ms)

    endpoint.run(job_input).output(timeout=60)
    sent.clear()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    return results, len(sent) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--sleep-ms", type=int, default=300)
    args = parser.parse_args()
    import runpod  # noqa: F401  (imported first: it turns on INFO logging for every library)

    # One log line per request would swamp the figures; the SDK's 10-connection pool under 100
    # threads also makes urllib3 warn on every discarded connection.
    for name in ("httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    job_input = {"sleep_ms": args.sleep_ms}
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        port = free_port()
        proc = start_simulator(Path(tmp) / "data", port, bench_config(Path(tmp)))
        try:
            base = f"http://127.0.0.1:{port}"
            api_url, rest_url = f"{base}/v2", f"{base}/rest/v2"
            with RunPod(KEY, api_url=api_url, rest_url=rest_url) as helper:
                warm_up(helper)
                ours, ours_rpj = run_ours(api_url, rest_url, args.jobs, job_input)
                sdk, sdk_rpj = run_sdk(api_url, helper, args.jobs, job_input)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    ours_p50, sdk_p50 = statistics.median(ours), statistics.median(sdk)
    print(f"jobs={args.jobs}")
    print(f"job_sleep_ms={args.sleep_ms}")
    print(f"ours_overhead_ms_p50={ours_p50:.1f}")
    print(f"ours_overhead_ms_p95={statistics.quantiles(ours, n=20)[-1]:.1f}")
    print(f"sdk_overhead_ms_p50={sdk_p50:.1f}")
    print(f"sdk_overhead_ms_p95={statistics.quantiles(sdk, n=20)[-1]:.1f}")
    print(f"overhead_ratio={ours_p50 / sdk_p50:.3f}")
    print(f"ours_requests_per_job={ours_rpj:.2f}")
    print(f"sdk_requests_per_job={sdk_rpj:.2f}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
