"""DevWorkerJobs against a MockTransport that behaves like runpod's `handler.py --rp_serve_api`."""
from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from lib.runpod import JobStatus, JobWaitTimeout, NotFound, PayloadTooLarge, RunPod, Unsupported

KEY = "rpa_CANARY_7f3e9c1d2b4a"
URL = "http://localhost:8000"


class FakeServeApi:
    """Root routes, no auth, /run stores, POST /status runs then forgets, unknown id ⇒ 200 FAILED."""

    def __init__(self, handler=lambda inp: {"echo": inp}):
        self.jobs: dict[str, dict] = {}
        self.requests: list[httpx.Request] = []
        self.runs = 0
        self.handler = handler
        self.lock = threading.Lock()

    def _execute(self, job_id, inp):
        self.runs += 1
        try:
            return {"id": job_id, "status": "COMPLETED", "output": self.handler(inp)}
        except Exception as exc:  # the local API reports handler errors as FAILED
            return {"id": job_id, "status": "FAILED", "error": str(exc)}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/run" and request.method == "POST":
            job_id = f"test-{uuid.uuid4()}"
            self.jobs[job_id] = json.loads(request.content)["input"]
            return httpx.Response(200, json={"id": job_id, "status": "IN_PROGRESS"})
        if path == "/runsync" and request.method == "POST":
            return httpx.Response(200, json=self._execute(f"test-{uuid.uuid4()}", json.loads(request.content)["input"]))
        if path.startswith("/status/"):
            if request.method != "POST":
                return httpx.Response(405, json={"detail": "Method Not Allowed"})
            job_id = path.rsplit("/", 1)[1]
            with self.lock:
                inp = self.jobs.get(job_id)
            if inp is None:
                return httpx.Response(200, json={"id": job_id, "status": "FAILED", "error": "Job ID not found"})
            result = self._execute(job_id, inp)
            self.jobs.pop(job_id, None)
            return httpx.Response(200, json=result)
        return httpx.Response(404, json={"detail": "Not Found"})


def make(api: FakeServeApi):
    client = RunPod(KEY, transport=httpx.MockTransport(api), sleep=lambda s: None)
    return client.dev_worker(URL)


def test_run_then_status_runs_the_job_without_auth():
    api = FakeServeApi()
    dev = make(api)
    job = dev.run({"a": 1})
    assert job.status is JobStatus.IN_QUEUE and job.id.startswith("test-")
    assert api.runs == 0
    done = dev.status(job.id)
    assert done.status is JobStatus.COMPLETED and done.output == {"echo": {"a": 1}}
    assert [(r.method, str(r.url)) for r in api.requests] == [
        ("POST", f"{URL}/run"), ("POST", f"{URL}/status/{job.id}")]
    assert all("authorization" not in r.headers for r in api.requests)
    assert json.loads(api.requests[0].content) == {"input": {"a": 1}}


def test_status_read_timeout_is_long():
    api = FakeServeApi()
    dev = make(api)
    dev.status(dev.run({}).id)
    assert api.requests[1].extensions["timeout"]["read"] >= 3600


def test_finished_results_are_remembered():
    api = FakeServeApi()
    dev = make(api)
    job = dev.run({"a": 1})
    first = dev.status(job.id)
    again = dev.status(job.id)
    assert again == first and api.runs == 1 and len(api.requests) == 2


def test_unknown_id_is_not_found():
    dev = make(FakeServeApi())
    with pytest.raises(NotFound) as info:
        dev.status("test-nope")
    assert "does not know job test-nope" in str(info.value)
    assert str(info.value).startswith(f"POST /status/test-nope on dev worker {URL}")


def test_handler_failure_is_failed_not_not_found():
    def boom(inp):
        raise RuntimeError("handler exploded")
    dev = make(FakeServeApi(boom))
    job = dev.status(dev.run({}).id)
    assert job.status is JobStatus.FAILED and job.error == "handler exploded"


def test_runsync_and_run_and_wait():
    api = FakeServeApi()
    dev = make(api)
    assert dev.runsync({"x": 2}).output == {"echo": {"x": 2}}
    updates = []
    job = dev.run({"y": 3})
    assert dev.wait(job.id, timeout_s=5, on_update=updates.append).output == {"echo": {"y": 3}}
    assert [u.status for u in updates] == [JobStatus.COMPLETED]
    assert dev.run_and_wait({"z": 4}, timeout_s=5).output == {"echo": {"z": 4}}
    assert [r.url.path.split("/")[1] for r in api.requests] == ["runsync", "run", "status", "run", "status"]


def test_wait_timeout_maps_to_job_wait_timeout():
    def handler(request):
        if request.url.path == "/run":
            return httpx.Response(200, json={"id": "test-1", "status": "IN_PROGRESS"})
        raise httpx.ReadTimeout("slow handler", request=request)
    dev = RunPod(None, transport=httpx.MockTransport(handler), sleep=lambda s: None).dev_worker(URL)
    with pytest.raises(JobWaitTimeout) as info:
        dev.run_and_wait({}, timeout_s=2)
    assert info.value.job.id == "test-1" and info.value.job.status is JobStatus.IN_PROGRESS


def test_same_job_never_runs_twice_concurrently():
    gate = threading.Event()

    def slow(inp):
        gate.wait(5)
        return "ok"
    api = FakeServeApi(slow)
    dev = make(api)
    job = dev.run({})
    results = []
    threads = [threading.Thread(target=lambda: results.append(dev.status(job.id))) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # let all three callers reach the dev worker before the handler finishes
    gate.set()
    for t in threads:
        t.join(5)
    assert api.runs == 1 and [r.output for r in results] == ["ok"] * 3


@pytest.mark.parametrize("call, route", [
    (lambda d: d.cancel("j"), "/cancel"), (lambda d: d.retry("j"), "/retry"),
    (lambda d: d.purge_queue(), "/purge-queue"), (lambda d: d.health(), "/health"),
    (lambda d: d.stream("j"), "/stream"), (lambda d: d.iter_stream("j", timeout_s=1), "/stream"),
])
def test_unsupported_operations(call, route):
    api = FakeServeApi()
    dev = make(api)
    with pytest.raises(Unsupported) as info:
        call(dev)
    assert f"a worker under development (runpod --rp_serve_api at {URL}) has no {route}" in str(info.value)
    assert api.requests == []


def test_payload_limit_applies_to_dev_worker_too():
    api = FakeServeApi()
    with pytest.raises(PayloadTooLarge):
        make(api).run({"b": "x" * 10_000_001})
    assert api.requests == []
