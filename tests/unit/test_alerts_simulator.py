"""End to end on the simulator: injected failures make the failure-rate alert fire and reach a webhook."""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from lib.config import ConsoleConfig, Secret, Settings
from lib.localpod.server import LocalPod
from lib.ops.alerts import ALERTS_TOML_DOC
from lib.ops.monitor import OpsMonitor
from lib.ops.warmup import warmup_input
from lib.runpod import RunPod
from lib.services import Services
from lib.store import JobStore
from lib.tracker import Tracker
from lib.volume import LocalVolume

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"


@pytest.fixture
def receiver():
    texts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            texts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", texts
    server.shutdown()
    server.server_close()


@pytest.fixture
def services(tmp_path, receiver):
    url, _ = receiver
    base = (ROOT / "console.toml").read_text().split(ALERTS_TOML_DOC.splitlines()[0])[0]  # our rules only
    text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.002", base)
    text += f"""
[[alerts]]
name = "Image jobs failing"
rule = "failure_rate"
endpoints = ["image"]
above = 50
last_jobs = 4
min_jobs = 4

[alerts_webhook]
url = "{url}"
"""
    config = ConsoleConfig.parse(text)
    pod = LocalPod(tmp_path / "localpod", config, api_key=KEY, seed_demo=False).start()
    client = RunPod(KEY, api_url=pod.api_url, rest_url=pod.rest_url)
    store = JobStore(tmp_path / "data")
    def jobs_for(role):
        return client.for_spec(config.endpoint(role))

    tracker = Tracker(store, config, jobs_for).start()
    # Not added to the tracker's periodic tasks: the test ticks the monitor itself.
    monitor = OpsMonitor(config, tmp_path / "data", jobs=jobs_for, store=store, rest=client.rest)
    svc = Services(settings=Settings(api_key=Secret(""), data_dir=tmp_path / "data"), config=config,
                   client=client, volume=LocalVolume(pod.volume_dir), store=store, tracker=tracker,
                   monitor=monitor, localpod=pod)
    yield svc
    svc.close()


def run_jobs(svc, n, tag):
    records = [svc.tracker.submit("image", warmup_input("image"), kind="warmup", user="local-operator@localhost",
                                  idempotency_key=f"{tag}-{i}") for i in range(n)]
    return svc.tracker.wait_for([r.local_id for r in records], timeout_s=30)


def test_injected_failures_fire_an_alert_that_reaches_the_webhook_once(services, receiver):
    _, texts = receiver
    svc = services
    monitor = svc.monitor
    httpx.put(f"{svc.localpod.url}/admin/faults/image-sim01", json={"failure_rate": 1.0},
              headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()
    assert {r.status for r in run_jobs(svc, 4, "bad")} == {"FAILED"}

    result = monitor.tick_live()
    assert [(e.state, e.role) for e in result.events] == [("firing", "image")]
    assert result.health_errors == {}
    assert monitor.wait_for_deliveries(10)
    assert len(texts) == 1 and "Image jobs failing" in texts[0] and "4 of the last 4 jobs failed" in texts[0]
    assert monitor.tick_live().events == []  # still failing: not announced again
    assert monitor.wait_for_deliveries(10) and len(texts) == 1

    httpx.put(f"{svc.localpod.url}/admin/faults/image-sim01", json={"failure_rate": 0.0},
              headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()
    assert {r.status for r in run_jobs(svc, 4, "good")} == {"COMPLETED"}
    assert [e.state for e in monitor.tick_live().events] == ["resolved"]
    assert monitor.wait_for_deliveries(10)
    assert texts[-1].startswith(":white_check_mark: RESOLVED")
    assert [e.state for e in monitor.history.events()] == ["resolved", "firing"]
    assert len(monitor.health_log.snapshots("image")) == 3
