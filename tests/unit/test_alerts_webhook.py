"""Webhook delivery of alerts to a real local HTTP receiver (127.0.0.1), retries, delivery log, monitor tick."""
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from lib.config import ConfigError, ConsoleConfig
from lib.ops.alerts import ALERTS_TOML_DOC, AlertEvent, Observations
from lib.ops.monitor import OpsMonitor
from lib.ops.webhook import WebhookNotifier, webhook_url
from lib.runpod import Health, JobCounts, WorkerCounts

# The repository's console.toml without its own alert rules (each test declares its rules).
BASE_TOML = Path(__file__).resolve().parents[2].joinpath("console.toml").read_text().split(
    ALERTS_TOML_DOC.splitlines()[0])[0]
TOKEN = "T000/B000/XXXXsecretTOKEN"
T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A Slack-like incoming webhook: answers the queued statuses first, then 200."""

    def __init__(self):
        self.bodies, self.paths, self.statuses, self.headers = [], [], [], {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                receiver.bodies.append((self.headers["Content-Type"], json.loads(body)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def event(**kw):
    values = dict(alert_id="a · image", name="Queue above 10 jobs", rule="queue_depth", role="image",
                  state="firing", at=T0, value=14.0, threshold=10.0, severity="warning",
                  message="console-image: 14 jobs in queue", id=7)
    values.update(kw)
    return AlertEvent(**values)


def test_delivers_slack_compatible_json(receiver):
    notifier = WebhookNotifier(receiver.url, sleep=lambda s: None)
    result = notifier.deliver(event())
    notifier.close()
    assert result.ok and len(result.attempts) == 1
    content_type, body = receiver.bodies[0]
    assert content_type == "application/json"
    assert body == {"text": ":warning: FIRING — Queue above 10 jobs: console-image: 14 jobs in queue"}
    assert receiver.paths == [f"/services/{TOKEN}"]


def test_retries_server_errors_with_backoff_then_succeeds(receiver):
    receiver.statuses = [503, 500]
    slept = []
    notifier = WebhookNotifier(receiver.url, sleep=slept.append, backoff_s=0.5, attempts=4)
    result = notifier.deliver(event())
    assert result.ok and [a.status_code for a in result.attempts] == [503, 500, 200]
    assert len(receiver.bodies) == 3
    assert 0.375 <= slept[0] <= 0.625 and 0.75 <= slept[1] <= 1.25  # 0.5 s × 2^n with ±25 % jitter


def test_retry_after_is_honoured(receiver):
    receiver.statuses = [429]
    receiver.headers = {"Retry-After": "3"}
    slept = []
    WebhookNotifier(receiver.url, sleep=slept.append).deliver(event())
    assert slept == [3.0]


def test_client_errors_are_not_retried(receiver):
    receiver.statuses = [404]
    result = WebhookNotifier(receiver.url, sleep=lambda s: None).deliver(event())
    assert not result.ok and len(result.attempts) == 1
    assert result.error == f"127.0.0.1:{receiver.server.server_port} answered HTTP 404"


def test_unreachable_receiver_gives_up_after_all_attempts_without_leaking_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/services/{TOKEN}", attempts=3, sleep=lambda s: None)
    result = notifier.deliver(event())
    assert not result.ok and len(result.attempts) == 3
    assert all(a.status_code is None for a in result.attempts)
    assert TOKEN not in result.error and TOKEN not in repr(notifier) and TOKEN not in repr(result)


def test_webhook_url_must_be_http():
    with pytest.raises(ConfigError, match="http"):
        webhook_url(ConsoleConfig.parse(BASE_TOML + '\n[alerts_webhook]\nurl = "ftp://x"'))
    assert webhook_url(ConsoleConfig.parse(BASE_TOML)) is None


def failing_jobs(n_failed, n=10):
    df = pd.DataFrame({"role": "image", "status": ["FAILED"] * n_failed + ["COMPLETED"] * (n - n_failed),
                       "submitted_at": [T0 + timedelta(seconds=i) for i in range(n)],
                       "delay_ms": 500.0, "cold_start": False})
    df["submitted_at"] = df["submitted_at"].astype("datetime64[ns, UTC]")
    return df


def test_monitor_fires_delivers_logs_and_does_not_repeat(tmp_path, receiver):
    receiver.statuses = [502]
    config = ConsoleConfig.parse(BASE_TOML + f"""
[[alerts]]
rule = "failure_rate"
endpoints = ["image"]
above = 20
last_jobs = 10

[alerts_webhook]
url = "{receiver.url}"
""")
    now = [T0]
    # tick() is handed its observations here: no endpoint, job history or REST API is read.
    monitor = OpsMonitor(config, tmp_path, jobs=None, store=None, rest=None, clock=lambda: now[0],
                         notifier=WebhookNotifier(webhook_url(config), sleep=lambda s: None))
    health = {"image": Health(JobCounts(in_queue=2), WorkerCounts(running=1))}
    result = monitor.tick(Observations(health=health, jobs=failing_jobs(5)))
    assert [e.state for e in result.events] == ["firing"]
    assert monitor.wait_for_deliveries(10)
    assert [b["text"] for _, b in receiver.bodies] == [result.events[0].text()] * 2  # 502, then delivered
    log = monitor.history.deliveries(event_id=result.events[0].id)
    assert [(d.attempt, d.ok, d.status_code) for d in log] == [(2, True, 200), (1, False, 502)]

    now[0] += timedelta(minutes=1)
    assert monitor.tick(Observations(health=health, jobs=failing_jobs(5))).events == []
    now[0] += timedelta(minutes=1)
    resolved = monitor.tick(Observations(health=health, jobs=failing_jobs(0))).events
    assert [e.state for e in resolved] == ["resolved"]
    assert monitor.wait_for_deliveries(10)
    assert receiver.bodies[-1][1]["text"].startswith(":white_check_mark: RESOLVED")
    assert len(monitor.health_log.snapshots("image")) == 3
    monitor.close()
