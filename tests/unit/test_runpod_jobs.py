"""EndpointJobs on httpx.MockTransport: routes, typed parsing, payload limits, polling, streaming."""
from __future__ import annotations

import json

import httpx
import pytest

from lib.config import EndpointSpec, Secret, Settings
from lib.runpod import (
    TERMINAL,
    BadResponse,
    DevWorkerJobs,
    EndpointJobs,
    Health,
    Job,
    JobStatus,
    JobWaitTimeout,
    NotFound,
    PayloadTooLarge,
    Policy,
    PollPolicy,
    PurgeResult,
    RunPod,
    StreamPage,
)
from lib.runpod.models import parse_status
from tests.support.fakes import API_URL, KEY, recording_runpod


def body_of(request: httpx.Request) -> dict:
    return json.loads(request.content)


# ---------------------------------------------------------------------------- routes


def test_run_sends_input_webhook_policy_with_bearer_auth():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "j-1", "status": "IN_QUEUE"}))
    job = client.endpoint("img-1").run({"prompt": "x"}, webhook="https://hook.test/a",
                                       policy=Policy(execution_timeout_ms=900_000, low_priority=True, ttl_ms=60_000))
    req = seen[0]
    assert (req.method, str(req.url)) == ("POST", f"{API_URL}/img-1/run")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"] == "application/json"
    assert body_of(req) == {"input": {"prompt": "x"}, "webhook": "https://hook.test/a",
                            "policy": {"executionTimeout": 900000, "lowPriority": True, "ttl": 60000}}
    assert b": " not in req.content and b", " not in req.content  # compact JSON
    assert job == Job(id="j-1", status=JobStatus.IN_QUEUE)


def test_run_omits_unset_fields():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "j-1", "status": "IN_QUEUE"}))
    client.endpoint("img-1").run({"a": 1}, policy=Policy())
    assert body_of(seen[0]) == {"input": {"a": 1}}


def test_policy_to_json_only_set_keys():
    assert Policy().to_json() == {}
    assert Policy(ttl_ms=10_000).to_json() == {"ttl": 10000}
    assert Policy(low_priority=False).to_json() == {"lowPriority": False}


@pytest.mark.parametrize("call, method, path, query", [
    (lambda e: e.status("j/1"), "GET", "/img-1/status/j%2F1", ""),
    (lambda e: e.status("j-1", ttl_ms=5000), "GET", "/img-1/status/j-1", "ttl=5000"),
    (lambda e: e.cancel("j-1"), "POST", "/img-1/cancel/j-1", ""),
    (lambda e: e.retry("j-1"), "POST", "/img-1/retry/j-1", ""),
])
def test_job_routes(call, method, path, query):
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "j-1", "status": "IN_QUEUE"}))
    result = call(client.endpoint("img-1"))
    assert isinstance(result, Job)
    assert seen[0].method == method
    assert seen[0].url.raw_path.decode() == "/v2" + path + (f"?{query}" if query else "")
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert not seen[0].content


def test_stream_health_purge_routes_and_parsing():
    answers = {
        "/v2/e/stream/j": {"id": "j", "status": "IN_PROGRESS", "stream": [{"output": "a"}, {"output": {"b": 1}}]},
        "/v2/e/health": {"jobs": {"completed": 3, "inProgress": 1}, "workers": {"idle": 2, "ready": 1}},
        "/v2/e/purge-queue": {"removed": 2, "status": "completed"},
    }
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=answers[r.url.path]))
    e = client.endpoint("e")
    page = e.stream("j")
    assert page == StreamPage(status=JobStatus.IN_PROGRESS, chunks=["a", {"b": 1}], id="j")
    health = e.health()
    assert isinstance(health, Health)
    assert (health.jobs.completed, health.jobs.in_progress, health.jobs.failed, health.jobs.retried) == (3, 1, 0, 0)
    assert (health.workers.idle, health.workers.ready, health.workers.unhealthy, health.workers.total) == (2, 1, 0, 3)
    assert e.purge_queue() == PurgeResult(removed=2, status="completed")
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/v2/e/stream/j"), ("GET", "/v2/e/health"), ("POST", "/v2/e/purge-queue")]


def test_runsync_wait_param_and_read_timeout_exceeds_wait():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "sync-1", "status": "IN_PROGRESS"}))
    job = client.endpoint("e").runsync({"a": 1}, wait_ms=120_000)
    assert job.status is JobStatus.IN_PROGRESS and not job.is_terminal  # normal, not an error
    assert seen[0].url.params["wait"] == "120000"
    assert seen[0].extensions["timeout"]["read"] > 120.0
    client.endpoint("e").runsync({"a": 1})
    assert "wait" not in seen[1].url.params
    assert seen[1].extensions["timeout"]["read"] > 90.0  # RunPod's default hold
    client.endpoint("e").runsync({"a": 1}, wait_ms=10)
    assert seen[2].url.params["wait"] == "1000"  # clamped to RunPod's 1..300 s range


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("status", ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"])
def test_every_state_parses(status):
    raw = {"id": "j", "status": status, "delayTime": 824, "executionTime": 3391.0, "workerId": "w-1",
           "retries": 1, "output": [{"seed": 1}], "error": "boom" if status == "FAILED" else None}
    client, _, _ = recording_runpod(lambda r: httpx.Response(200, json=raw))
    job = client.endpoint("e").status("j")
    assert job.status is JobStatus(status)
    assert (job.delay_time_ms, job.execution_time_ms, job.worker_id, job.retries) == (824, 3391, "w-1", 1)
    assert job.output == [{"seed": 1}]
    assert job.is_terminal == (status in {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
    assert job.raw == raw


def test_terminal_set_and_running_alias():
    assert TERMINAL == {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT}
    assert parse_status("RUNNING") is JobStatus.IN_PROGRESS
    with pytest.raises(BadResponse, match="unknown job status 'PAUSED'"):
        parse_status("PAUSED")


def test_status_without_id_keeps_requested_id_and_optional_fields_none():
    client, _, _ = recording_runpod(lambda r: httpx.Response(200, json={"status": "IN_QUEUE"}))
    job = client.endpoint("e").status("abc")
    assert (job.id, job.delay_time_ms, job.worker_id, job.output, job.error) == ("abc", None, None, None, None)


@pytest.mark.parametrize("raw, fragment", [
    ({"id": "j", "status": "DONE"}, "unknown job status"),
    ({"id": "j", "status": "COMPLETED", "delayTime": "12"}, "'delayTime'"),
    ({"id": "j", "status": "COMPLETED", "workerId": 5}, "'workerId'"),
    ({"id": "j", "status": "COMPLETED", "executionTime": True}, "'executionTime'"),
    (["not", "an", "object"], "expected a JSON object"),
])
def test_wrong_types_are_bad_response(raw, fragment):
    client, _, _ = recording_runpod(lambda r: httpx.Response(200, json=raw))
    with pytest.raises(BadResponse) as info:
        client.endpoint("img-1").status("j")
    assert fragment in str(info.value)
    assert "GET /status/j on endpoint img-1" in str(info.value)


def test_health_with_wrong_counter_type_is_bad_response():
    client, _, _ = recording_runpod(lambda r: httpx.Response(200, json={"jobs": {"inQueue": "2"}, "workers": {}}))
    with pytest.raises(BadResponse, match="inQueue"):
        client.endpoint("e").health()


# ---------------------------------------------------------------------------- payload limits


@pytest.mark.parametrize("route, limit", [("run", 10_000_000), ("runsync", 20_000_000)])
def test_payload_too_large_before_any_request(route, limit):
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "j", "status": "IN_QUEUE"}))
    big = {"image": "x" * (limit + 400_000)}
    with pytest.raises(PayloadTooLarge) as info:
        getattr(client.endpoint("e"), route)(big)
    assert seen == []
    err = info.value
    assert err.limit == limit and err.size == len(json.dumps({"input": big}, separators=(",", ":")))
    assert f"RunPod accepts at most {limit / 1e6:.1f} MB on /{route}" in str(err)
    assert f"request body is {err.size / 1e6:.1f} MB" in str(err)


def test_payload_measured_in_utf8_bytes():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "j", "status": "IN_QUEUE"}))
    # 3.4 M characters but 10.2 MB once encoded: the limit is on bytes.
    with pytest.raises(PayloadTooLarge):
        client.endpoint("e").run({"t": "€" * 3_400_000})
    assert seen == []


def test_non_dict_input_is_refused_early():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200))
    with pytest.raises(TypeError, match="input must be a dict"):
        client.endpoint("e").run(["a"])
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        client.endpoint("e").run({"a": object()})
    assert seen == []


# ---------------------------------------------------------------------------- wait / run_and_wait


def sequence(*answers):
    it = iter(answers)
    last = [None]

    def handler(request):
        try:
            last[0] = next(it)
        except StopIteration:
            pass
        return httpx.Response(200, json=last[0])
    return handler


def test_wait_polls_adaptively_and_reports_changes():
    client, seen, clock = recording_runpod(sequence(
        {"id": "j", "status": "IN_QUEUE"}, {"id": "j", "status": "IN_QUEUE"},
        {"id": "j", "status": "IN_PROGRESS", "output": {"progress": "1/2"}},
        {"id": "j", "status": "IN_PROGRESS", "output": {"progress": "2/2"}},
        {"id": "j", "status": "COMPLETED", "output": "done", "delayTime": 5, "executionTime": 9}))
    updates = []
    job = client.endpoint("e").wait("j", timeout_s=60, on_update=updates.append)
    assert job.status is JobStatus.COMPLETED and job.output == "done"
    assert clock.sleeps == pytest.approx([0.05, 0.075, 0.1125, 0.16875, 0.253125])
    assert len(seen) == 5
    assert [u.status for u in updates] == [JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS, JobStatus.IN_PROGRESS,
                                           JobStatus.COMPLETED]


def test_wait_interval_capped():
    client, _, clock = recording_runpod(sequence(*([{"id": "j", "status": "IN_QUEUE"}] * 12),
                                                 {"id": "j", "status": "FAILED"}))
    client.endpoint("e").wait("j", timeout_s=600, poll=PollPolicy(first_s=0.5, factor=2, cap_s=2.0))
    assert clock.sleeps[:4] == [0.5, 1.0, 2.0, 2.0]
    assert max(clock.sleeps) == 2.0


def test_wait_deadline_raises_with_last_job():
    client, seen, clock = recording_runpod(lambda r: httpx.Response(200, json={"id": "j", "status": "IN_PROGRESS"}))
    with pytest.raises(JobWaitTimeout) as info:
        client.endpoint("e").wait("j", timeout_s=5)
    assert info.value.job.status is JobStatus.IN_PROGRESS
    assert clock.elapsed == pytest.approx(5.0)  # never sleeps past the deadline
    assert "still IN_PROGRESS after 5 s" in str(info.value)
    assert len(seen) <= 12


def test_run_and_wait_done_in_one_request():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "sync-1", "status": "COMPLETED",
                                                                           "output": 1}))
    job = client.endpoint("e").run_and_wait({"a": 1}, timeout_s=20)
    assert job.output == 1
    assert [(r.method, r.url.path, r.url.params.get("wait")) for r in seen] == [("POST", "/v2/e/runsync", "20000")]


@pytest.mark.parametrize("timeout_s, wait", [(0.2, "1000"), (900, "300000")])
def test_run_and_wait_clamps_wait(timeout_s, wait):
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "s", "status": "COMPLETED"}))
    client.endpoint("e").run_and_wait({}, timeout_s=timeout_s)
    assert seen[0].url.params["wait"] == wait


def test_run_and_wait_falls_back_to_polling():
    def handler(request):
        if request.url.path.endswith("/runsync"):
            return httpx.Response(200, json={"id": "sync-1", "status": "IN_QUEUE"})
        polls = sum(1 for r in seen if "/status/" in r.url.path)
        status = "COMPLETED" if polls >= 3 else "IN_PROGRESS"
        return httpx.Response(200, json={"id": "sync-1", "status": status, "output": "ok"})
    client, seen, _ = recording_runpod(handler)
    job = client.endpoint("e").run_and_wait({"a": 1}, timeout_s=400)
    assert job.status is JobStatus.COMPLETED
    assert [r.url.path for r in seen] == ["/v2/e/runsync"] + ["/v2/e/status/sync-1"] * 3


def test_run_and_wait_deadline_counts_runsync_time():
    client, seen, clock = recording_runpod(lambda r: httpx.Response(200, json={"id": "s", "status": "IN_QUEUE"}))
    original = client._core.request

    def slow(*a, **kw):  # the runsync itself holds for the whole budget
        clock.advance(10 if kw.get("operation", "").startswith("POST /runsync") else 0)
        return original(*a, **kw)
    client._core.request = slow
    with pytest.raises(JobWaitTimeout):
        client.endpoint("e").run_and_wait({}, timeout_s=10)
    assert len(seen) == 2  # runsync + one last status, no further polling


# ---------------------------------------------------------------------------- streaming


def test_iter_stream_stops_on_cancelled():
    client, seen, _ = recording_runpod(sequence(
        {"id": "j", "status": "IN_PROGRESS", "stream": [{"output": 1}]},
        {"id": "j", "status": "IN_PROGRESS", "stream": []},
        {"id": "j", "status": "CANCELLED", "stream": []}))
    gen = client.endpoint("e").iter_stream("j", timeout_s=30)
    assert list(gen) == [1]
    assert len(seen) == 3


def test_iter_stream_drains_final_pages_and_returns_status():
    client, seen, clock = recording_runpod(sequence(
        {"id": "j", "status": "IN_PROGRESS", "stream": [{"output": "a"}, {"output": "b"}]},
        {"id": "j", "status": "COMPLETED", "stream": [{"output": "c"}]},
        {"id": "j", "status": "COMPLETED", "stream": []}))
    gen = client.endpoint("e").iter_stream("j", timeout_s=30)
    chunks = []
    with pytest.raises(StopIteration) as stop:
        while True:
            chunks.append(next(gen))
    assert chunks == ["a", "b", "c"]
    assert stop.value.value is JobStatus.COMPLETED
    assert len(clock.sleeps) == 1  # no pause between the final pages


def test_iter_stream_deadline():
    client, _, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "j", "status": "IN_QUEUE", "stream": []}))
    with pytest.raises(JobWaitTimeout) as info:
        list(client.endpoint("e").iter_stream("j", timeout_s=3))
    assert info.value.job.status is JobStatus.IN_QUEUE


# ---------------------------------------------------------------------------- construction


def test_for_spec_and_from_settings():
    settings = Settings(api_key=Secret(KEY), api_url="http://127.0.0.1:9/v2", rest_url="http://127.0.0.1:9/rest/v2")
    with RunPod.from_settings(settings) as client:
        assert client.api_url == "http://127.0.0.1:9/v2"
        assert isinstance(client.for_spec(EndpointSpec(role="image", id="img-1")), EndpointJobs)
        dev = client.for_spec(EndpointSpec(role="image", url="http://localhost:8000"))
        assert isinstance(dev, DevWorkerJobs) and dev is client.dev_worker("http://localhost:8000/")
        assert client.endpoint("img-1") is client.endpoint("img-1")
        assert client.http.timeout.connect == 5.0
        assert KEY not in repr(client) and KEY not in repr(client.endpoint("x")) and KEY not in repr(client.rest)


def test_job_not_found_message():
    client, _, _ = recording_runpod(lambda r: httpx.Response(404, json={"error": "job not found"}))
    with pytest.raises(NotFound) as info:
        client.endpoint("img-1").status("j-9")
    msg = str(info.value)
    assert msg.startswith("GET /status/j-9 on endpoint img-1: the job is gone: results are kept 30 min")
    assert "job not found" in msg
