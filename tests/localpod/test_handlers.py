"""Handler registry and result mapping (runpod worker SDK semantics)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from lib.localpod.handlers import JobCancelled, JobContext, basic, execute, handler_for


def ctx(tmp_path, **kw) -> JobContext:
    return JobContext("job-1", "ep-1", "basic", "worker-1", tmp_path, 0.01, **kw)


def run(handler, tmp_path, job_input=None, **kw):
    chunks = []
    outcome = execute(handler, {"id": "job-1", "input": job_input or {}}, ctx(tmp_path, **kw),
                      on_chunk=chunks.append)
    return outcome, chunks


def test_roles_without_a_handler_get_basic():
    assert handler_for("no-such-role") is basic.handle
    assert handler_for("basic") is basic.handle


@pytest.mark.parametrize("returned, status, output, error", [
    ({"images": [1]}, "COMPLETED", {"images": [1]}, None),
    ({"error": "bad prompt", "partial": 1}, "FAILED", None, "bad prompt"),
    ({"error": {"code": 3}, "x": 1}, "COMPLETED", {"x": 1}, None),   # runpod-python issue #299
    ({}, "COMPLETED", None, None),
    ("plain", "COMPLETED", "plain", None),
    (None, "COMPLETED", None, None),
])
def test_return_values_map_like_the_worker_sdk(tmp_path, returned, status, output, error):
    outcome, _ = run(lambda job, c: returned, tmp_path)
    assert (outcome.status, outcome.output, outcome.error) == (status, output, error)


def test_refresh_worker_asks_for_a_worker_restart(tmp_path):
    outcome, _ = run(lambda job, c: {"ok": 1, "refresh_worker": True}, tmp_path)
    assert outcome.output == {"ok": 1} and outcome.stop_worker


def test_exception_becomes_the_sdk_json_report(tmp_path):
    def boom(job, c):
        raise KeyError("seed")
    outcome, _ = run(boom, tmp_path)
    report = json.loads(outcome.error)
    assert outcome.status == "FAILED"
    assert report["error_type"] == "<class 'KeyError'>"
    assert report["error_message"] == "'seed'"
    assert report["worker_id"] == "worker-1" and report["runpod_version"] == "1.12.0"


def test_generator_streams_and_aggregates(tmp_path):
    outcome, chunks = run(lambda job, c: (x for x in (1, {"b": 2})), tmp_path)
    assert chunks == [1, {"b": 2}]
    assert outcome.status == "COMPLETED" and outcome.output == [1, {"b": 2}]


def test_generator_errors(tmp_path):
    def yields_error(job, c):
        yield "first"
        yield {"error": "nsfw"}
        yield "never"
    outcome, chunks = run(yields_error, tmp_path)
    assert (outcome.status, outcome.error, chunks) == ("FAILED", "nsfw", ["first"])

    def raises(job, c):
        yield "first"
        raise ValueError("disk full")
    outcome, _ = run(raises, tmp_path)
    assert outcome.status == "FAILED" and outcome.error.startswith("handler: disk full \ntraceback:")


def test_context_sleep_wakes_on_cancel(tmp_path):
    cancel = threading.Event()
    c = ctx(tmp_path, cancel_event=cancel)
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        c.sleep(100)                        # 100 simulated s x 0.01 = 1 s, cut short
    assert time.monotonic() - started < 0.5
    assert c.cancelled
    with pytest.raises(JobCancelled):
        c.progress({"step": 1})


def test_context_progress_and_scaled_sleep(tmp_path):
    updates = []
    c = ctx(tmp_path, on_progress=updates.append)
    started = time.monotonic()
    c.sleep(5)                              # 5 x 0.01 = 50 ms
    assert 0.045 <= time.monotonic() - started < 0.5
    c.progress({"step": 2})
    assert updates == [{"step": 2}] and not c.cancelled
    assert c.volume_dir == tmp_path and "worker-1" in repr(c)


def test_cancelled_handler_reports_cancelled(tmp_path):
    cancel = threading.Event()
    cancel.set()
    outcome, _ = run(basic.handle, tmp_path, {"sleep_ms": 1000}, cancel_event=cancel)
    assert outcome.status == "CANCELLED"


def test_basic_handler_rejects_non_object_input(tmp_path):
    outcome = execute(basic.handle, {"id": "j", "input": "text"}, ctx(tmp_path))
    assert outcome.status == "FAILED"
    assert "expects `input` to be an object" in json.loads(outcome.error)["error_message"]
