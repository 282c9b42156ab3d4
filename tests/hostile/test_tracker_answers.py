"""Proof that nothing is lost when RunPod answers garbage: the tracker keeps the job as it was
recorded (input, RunPod id, state), says why in the log without secrets, and finishes it once
the answers make sense again. A /run whose 2xx answer cannot be read is a job RunPod may have
taken: it must be recorded UNKNOWN (never resent), not SUBMIT_FAILED (an invitation to resend)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from lib.config import ConsoleConfig
from lib.runpod import RunPod
from lib.store import JobStore
from lib.tracker import PollSchedule, SubmitRefused, Tracker

ROOT = Path(__file__).resolve().parents[2]
KEY = "rpa_CANARY_7F3C9D2E41B84A6F9E0D5C1B2A3F4E5D"
USER = "local-operator@localhost"
INPUT = {"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}, "note": "keep me"}
IMMEDIATE = PollSchedule(first_s=0.0, factor=1.0, cap_s=0.0, training_cap_s=0.0)

BAD_STATUS_BODIES = {
    "empty": (200, b""),
    "truncated": (200, b'{"id": "rp-1", "status": "COMPL'),
    "html-200": (200, b"<html><body>maintenance</body></html>"),
    "html-502": (502, b"<html><body>bad gateway</body></html>"),
    "list": (200, b"[]"),
    "unknown-status": (200, b'{"id": "rp-1", "status": "DONE"}'),
    "nan-delay": (200, b'{"id": "rp-1", "status": "COMPLETED", "delayTime": NaN}'),
    "echoed-key": (200, f"<html>Bearer {KEY}</html>".encode()),
}


class Scripted:
    """A fake RunPod whose answers per route are queued by the test."""

    def __init__(self):
        self.run: list[tuple[int, bytes]] = []
        self.status: list[tuple[int, bytes]] = []
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        queue = self.run if path.endswith("/run") else self.status
        code, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(code, content=body)


@pytest.fixture
def rig(tmp_path):
    config = ConsoleConfig.load(ROOT / "console.toml")
    script = Scripted()
    client = RunPod(KEY, transport=httpx.MockTransport(script), sleep=lambda s: None, max_retries=0)
    store = JobStore(tmp_path)
    tracker = Tracker(store, config, lambda role: client.for_spec(config.endpoint(role)), schedule=IMMEDIATE)
    yield script, tracker
    tracker.stop()
    store.close()
    client.close()


@pytest.mark.parametrize("name", sorted(BAD_STATUS_BODIES))
def test_garbage_status_keeps_the_job_until_a_good_answer(rig, name, caplog, canary):
    script, tracker = rig
    script.run = [(200, b'{"id": "rp-1", "status": "IN_QUEUE"}')]
    script.status = [BAD_STATUS_BODIES[name], BAD_STATUS_BODIES[name],
                     (200, json.dumps({"id": "rp-1", "status": "COMPLETED", "executionTime": 1200,
                                       "delayTime": 300, "output": {"ok": True}}).encode())]
    caplog.set_level(logging.WARNING)
    record = tracker.submit("image", INPUT, kind="test", user=USER, idempotency_key=f"garbage-{name}")

    for _ in range(2):
        assert tracker.poll_due() == 1
        kept = tracker.store.get(record.local_id)
        assert (kept.status, kept.runpod_id, kept.input) == ("IN_QUEUE", "rp-1", INPUT)
        assert tracker.tracked() == 1, "the job stays followed"
    assert tracker.poll_due() == 1

    final = tracker.store.get(record.local_id)
    assert final.status == "COMPLETED" and final.output == {"ok": True} and final.input == INPUT
    assert "job " + record.local_id in caplog.text
    assert canary.find(caplog.text) == []
    assert sum(r.endswith("/run") for r in script.requests) == 1


@pytest.mark.parametrize("code,body,says", [
    (400, b'{"error": "input is required"}', "HTTP 400"),
    (401, f'{{"error": "bad key {KEY}"}}'.encode(), "check RUNPOD_API_KEY"),
    (404, b"<html>no such endpoint</html>", "check the endpoint id in console.toml")])
def test_run_refused_outright_is_submit_failed_with_the_input_kept(rig, code, body, says, canary):
    script, tracker = rig
    script.run = [(code, body)]
    with pytest.raises(SubmitRefused) as refused:
        tracker.submit("image", INPUT, kind="test", user=USER, idempotency_key=f"refused-{code}")
    record = tracker.store.get(refused.value.record.local_id)
    assert record.status == "SUBMIT_FAILED"
    assert says in record.error
    assert record.input == INPUT
    assert canary.find(record.error) == []


@pytest.mark.parametrize("body", [b"", b'{"id": "rp-1", "sta', b"<html>ok</html>", b'{"status": "IN_QUEUE"}'],
                         ids=["empty", "truncated", "html", "no-id"])
def test_run_with_unreadable_2xx_answer_is_unknown_not_submit_failed(rig, body):
    """FINDING: the 2xx proves RunPod received the /run, so the job probably exists. Today the
    client raises BadResponse without outcome_unknown and the tracker records SUBMIT_FAILED,
    which tells the person to submit again: a duplicate GPU job."""
    script, tracker = rig
    script.run = [(200, body)]
    record = tracker.submit("image", INPUT, kind="test", user=USER, idempotency_key="unreadable-2xx")
    assert record.status == "UNKNOWN"
    assert record.input == INPUT
    assert sum(r.endswith("/run") for r in script.requests) == 1
