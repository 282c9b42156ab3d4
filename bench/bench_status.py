"""Benchmark: how fast localpod answers GET /v2/{endpoint}/status/{id}.

Starts `python -m lib.localpod` as a subprocess (temporary data dir, --no-seed), submits a few
hundred jobs, then a separate load process (aiohttp, keep-alive) drives sustained status polls
for ~10 s and this script prints name=value lines:

    status_rps=<requests per second>  status_p50_ms=<n>  status_p99_ms=<n>  (and context lines)

Target: >= 500 req/s with p99 < 50 ms on 2 cores. The simulator's per-endpoint rate limit
(2000 status calls per 10 s, like RunPod) is switched off through PUT /admin/settings for the
run, since the point is the server's own capacity.

    python bench/bench_status.py [--seconds 10] [--concurrency 24] [--jobs 300]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY_PREFIX = "localpod ready on "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_localpod(data_dir: Path, key: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib.localpod", "--host", "127.0.0.1", "--port", str(port),
         "--data", str(data_dir), "--no-seed", "--api-key", key,
         "--config", str(ROOT / "console.toml")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline().strip()
    if not line.startswith(READY_PREFIX):
        proc.kill()
        raise SystemExit(f"localpod did not start: {line!r}")
    return proc, line[len(READY_PREFIX):]


def prepare(url: str, key: str, jobs: int) -> list[str]:
    """Submit jobs across the simulated endpoints; returns 'endpoint/job' paths to poll."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        client.put("/admin/settings", json={"rate_limits": False}).raise_for_status()
        endpoints = [e["id"] for e in client.get("/rest/v2/serverless").json()["endpoints"]]
        paths = []
        for i in range(jobs):
            endpoint = endpoints[i % len(endpoints)]
            r = client.post(f"/v2/{endpoint}/run",
                            json={"input": {"sleep_ms": random.randint(0, 2000), "echo": i}})
            r.raise_for_status()
            paths.append(f"{endpoint}/status/{r.json()['id']}")
    return paths


async def load(url: str, key: str, paths: list[str], seconds: float, concurrency: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    async def user(session: aiohttp.ClientSession, rng: random.Random) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            path = rng.choice(paths)
            t0 = time.perf_counter()
            async with session.get(f"{url}/v2/{path}") as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        await asyncio.gather(*(user(session, random.Random(i)) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "elapsed": elapsed,
            "p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--load-worker", nargs=2, metavar=("URL", "PATHS_FILE"),
                        help=argparse.SUPPRESS)   # internal: run as the separate load process
    args = parser.parse_args()

    if args.load_worker:
        url, paths_file = args.load_worker
        paths = json.loads(Path(paths_file).read_text())
        result = asyncio.run(load(url, os.environ["LOCALPOD_BENCH_KEY"], paths, args.seconds,
                                  args.concurrency))
        print(json.dumps(result))
        return 0

    key = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="localpod-bench-") as tmp:
        proc, url = start_localpod(Path(tmp) / "data", key)
        try:
            paths = prepare(url, key, args.jobs)
            paths_file = Path(tmp) / "paths.json"
            paths_file.write_text(json.dumps(paths))
            out = subprocess.run(
                [sys.executable, __file__, "--seconds", str(args.seconds), "--concurrency",
                 str(args.concurrency), "--load-worker", url, str(paths_file)],
                capture_output=True, text=True, check=True,
                env={**os.environ, "LOCALPOD_BENCH_KEY": key})
            result = json.loads(out.stdout)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"status_rps={result['requests'] / result['elapsed']:.0f}")
    print(f"status_p50_ms={result['p50'] * 1000:.2f}")
    print(f"status_p99_ms={result['p99'] * 1000:.2f}")
    print(f"status_requests={result['requests']}")
    print(f"status_errors={result['errors']}")
    print(f"concurrency={args.concurrency}")
    print(f"seconds={result['elapsed']:.1f}")
    print(f"cpus={os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
