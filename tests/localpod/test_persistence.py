"""State survives a restart on the same data directory; the standalone CLI."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def billing_total(api) -> float:
    report = api.http.get("/rest/v2/billing/serverless", params={"bucketSize": "hour"}).json()
    return report["metadata"]["totals"]["totalAmount"]


def test_restart_keeps_jobs_settings_counters_and_billing(start_localpod, basic_config, tmp_path,
                                                           api_for):
    data = tmp_path / "data"
    api = api_for(start_localpod(basic_config, data_dir=data))
    done = api.run({"echo": "kept"})
    final = api.wait(done)
    api.wait(api.run({"fail": "x"}))
    running = api.run({"sleep_ms": 10_000})
    api.wait(running, ("IN_PROGRESS",))
    api.patch({"workers": {"max": 0}, "name": "renamed-basic"})   # the running job keeps running
    queued = api.run({"echo": "waiting"})
    before = billing_total(api)
    assert before > 0
    api.pod.stop()

    again = api_for(start_localpod(basic_config, data_dir=data))
    assert again.status(done) == final
    assert again.status(queued) == {"id": queued, "status": "IN_QUEUE"}
    # running at shutdown: back in the queue, counted as a retry
    assert again.status(running) == {"id": running, "status": "IN_QUEUE", "retries": 1}
    endpoint = again.http.get("/rest/v2/serverless/basic-sim01").json()
    assert endpoint["name"] == "renamed-basic" and endpoint["workers"]["max"] == 0
    jobs = again.health()["jobs"]
    assert (jobs["completed"], jobs["failed"], jobs["inQueue"]) == (1, 1, 2)
    after = billing_total(again)
    price = basic_config.flex_per_s["ADA_24"]
    assert before <= after <= before + 2 * price     # billed up to the stop, nothing lost
    again.patch({"workers": {"max": 2}})
    assert again.wait(queued)["output"]["echo"] == "waiting"
    again.post(f"cancel/{running}")


def test_expired_results_are_dropped_on_restart(start_localpod, basic_config, tmp_path, api_for):
    data = tmp_path / "data"
    api = api_for(start_localpod(basic_config, data_dir=data))
    api.settings(run_retention_s=0.2)
    job_id = api.run({"echo": 1})
    api.wait(job_id)
    api.pod.stop()
    time.sleep(0.3)
    again = api_for(start_localpod(basic_config, data_dir=data))
    assert again.get(f"status/{job_id}").status_code == 404


def test_cli_prints_one_ready_line_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib.localpod", "--host", "127.0.0.1", "--port", "0",
         "--data", str(tmp_path / "data"), "--api-key", "cli-key", "--no-seed",
         "--time-scale", "0.002", "--config", str(ROOT / "console.toml")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"localpod ready on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        assert int(match.group(2)) > 0
        url = match.group(1)
        assert httpx.get(f"{url}/v2/image-sim01/health",
                         headers={"Authorization": "Bearer wrong"}).status_code == 401
        health = httpx.get(f"{url}/v2/image-sim01/health",
                           headers={"Authorization": "Bearer cli-key"})
        assert health.status_code == 200 and "workers" in health.json()
        assert (tmp_path / "data" / "localpod.sqlite").exists()
        assert (tmp_path / "data" / "volume").is_dir()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == ""                                   # exactly one line in all
    assert "cli-key" not in err


@pytest.mark.parametrize("args, message", [
    (["--config", "does-not-exist.toml"], "does-not-exist.toml not found"),
    (["--time-scale", "0"], "--time-scale must be > 0"),
])
def test_cli_reports_bad_arguments(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "lib.localpod", "--port", "0", "--data", str(tmp_path), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""
