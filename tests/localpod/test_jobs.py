"""Job API lifecycle on the simulator: every state, bodies as RunPod returns them."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.waiting import wait_until

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_run_completes_with_runpod_status_body(api):
    r = api.post("run", {"input": {"sleep_ms": 150, "echo": {"x": 1}}})
    assert r.status_code == 200
    queued = r.json()
    assert re.fullmatch(UUID + "-e1", queued["id"])
    assert queued == {"id": queued["id"], "status": "IN_QUEUE"}
    done = api.wait(queued["id"])
    assert done["status"] == "COMPLETED"
    assert set(done) == {"id", "status", "delayTime", "executionTime", "workerId", "retries",
                         "output"}
    assert done["output"] == {"echo": {"x": 1}, "worker_id": done["workerId"]}
    assert 140 <= done["executionTime"] < 1000
    assert done["delayTime"] >= 0 and done["retries"] == 0


def test_queued_job_body_has_only_id_and_status(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 0, "max": 0}})       # nothing can pick the job up
    job_id = api.run({"echo": 1})
    assert api.status(job_id) == {"id": job_id, "status": "IN_QUEUE"}


def test_returned_error_fails_the_job(api):
    body = api.wait(api.run({"fail": "the prompt is empty"}))
    assert body["status"] == "FAILED"
    assert body["error"] == "the prompt is empty"
    assert "output" not in body


def test_handler_exception_fails_with_sdk_error_report(api):
    body = api.wait(api.run({"raise": "CUDA out of memory"}))
    assert body["status"] == "FAILED"
    report = json.loads(body["error"])
    assert set(report) == {"error_type", "error_message", "error_traceback", "hostname",
                           "worker_id", "runpod_version"}
    assert report["error_message"] == "CUDA out of memory"
    assert report["error_type"] == "<class 'RuntimeError'>"
    assert report["worker_id"] == body["workerId"]
    assert "Traceback" in report["error_traceback"]


def test_cancel_queued_job(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 0, "max": 0}})
    job_id = api.run({"echo": 1})
    r = api.post(f"cancel/{job_id}")
    assert r.status_code == 200
    assert r.json() == {"id": job_id, "status": "CANCELLED"}
    assert api.status(job_id) == {"id": job_id, "status": "CANCELLED"}
    assert api.health()["jobs"]["inQueue"] == 0


def test_cancel_running_job_stops_it_and_frees_the_worker(api):
    job_id = api.run({"sleep_ms": 5000})
    running = api.wait(job_id, ("IN_PROGRESS",))
    assert api.post(f"cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}
    body = api.status(job_id)
    assert body["status"] == "CANCELLED"
    assert body["executionTime"] < 5000
    assert body["workerId"] == running["workerId"]
    # the handler saw the cancellation at once: its worker is no longer busy
    wait_until(lambda: api.health()["workers"]["running"] == 0, timeout_s=1, what="worker freed")


def test_execution_timeout_from_policy(api):
    job_id = api.run({"sleep_ms": 3000}, policy={"executionTimeout": 200})
    body = api.wait(job_id, timeout=5)
    assert body["status"] == "TIMED_OUT"
    assert 180 <= body["executionTime"] < 1500
    assert "200 ms" in body["error"]


def test_ttl_deletes_the_job_even_mid_run(api):
    job_id = api.run({"sleep_ms": 5000}, policy={"ttl": 600})
    api.wait(job_id, ("IN_PROGRESS",), timeout=2)
    api.wait_gone(job_id, timeout=3)
    r = api.get(f"status/{job_id}")
    assert r.status_code == 404 and "not found" in r.json()["error"]


def test_retry_requeues_failed_job_under_same_id(api):
    job_id = api.run({"fail": "bad seed"})
    api.wait(job_id)
    r = api.post(f"retry/{job_id}")
    assert r.status_code == 200
    assert r.json() == {"id": job_id, "status": "IN_QUEUE"}
    again = api.wait(job_id)
    assert again["status"] == "FAILED" and again["retries"] == 1


def test_retry_of_completed_job_is_rejected(api):
    job_id = api.run({"echo": 1})
    api.wait(job_id)
    r = api.post(f"retry/{job_id}")
    assert r.status_code == 400
    assert "only FAILED or TIMED_OUT" in r.json()["error"]


def test_runsync_returns_the_result(api):
    r = api.post("runsync", {"input": {"sleep_ms": 50, "echo": "hello"}})
    assert r.status_code == 200
    body = r.json()
    assert re.fullmatch("sync-" + UUID + "-e1", body["id"])
    assert body["status"] == "COMPLETED"
    assert body["output"]["echo"] == "hello"
    # the result stays readable through /status for a while
    assert api.status(body["id"])["status"] == "COMPLETED"


def test_runsync_returns_current_state_when_wait_expires(api):
    started = time.monotonic()
    r = api.post("runsync?wait=1000", {"input": {"sleep_ms": 2500}})
    elapsed = time.monotonic() - started
    body = r.json()
    assert r.status_code == 200
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert 0.95 <= elapsed < 2.0            # clamped minimum wait is 1000 ms
    assert api.wait(body["id"])["status"] == "COMPLETED"


def test_runsync_wait_is_clamped_to_one_second(api):
    started = time.monotonic()
    body = api.post("runsync?wait=1", {"input": {"sleep_ms": 3000}}).json()
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert time.monotonic() - started >= 0.95


def test_progress_is_visible_in_status(api):
    job_id = api.run({"sleep_ms": 1200, "progress_steps": 4})
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = api.status(job_id)
        if body["status"] == "IN_PROGRESS" and "output" in body:
            seen.add(body["output"]["progress"])
            assert "executionTime" in body
        if body["status"] == "COMPLETED":
            break
        time.sleep(0.02)
    assert {"1/4", "2/4"} <= seen
    assert body["output"]["echo"] is None          # the final output replaces the progress


def test_stream_delivers_each_chunk_once(api):
    job_id = api.run({"stream": ["a", {"b": 2}, "c"], "sleep_ms": 300})
    chunks, final = [], None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = api.get(f"stream/{job_id}")
        body = r.json()
        assert set(body) <= {"id", "status", "delayTime", "stream"}
        chunks += [c["output"] for c in body["stream"]]
        if body["status"] == "COMPLETED" and not body["stream"]:
            final = body
            break
        time.sleep(0.03)
    assert final is not None
    assert chunks == ["a", {"b": 2}, "c"]
    assert api.status(job_id)["output"] == ["a", {"b": 2}, "c"]


def test_purge_queue_removes_queued_jobs_only(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 0, "max": 1}})
    running = api.run({"sleep_ms": 3000})
    api.wait(running, ("IN_PROGRESS",))
    queued = [api.run({"echo": i}) for i in range(3)]
    r = api.post("purge-queue")
    assert r.status_code == 200
    assert r.json() == {"removed": 3, "status": "completed"}
    assert api.status(running)["status"] == "IN_PROGRESS"
    assert all(api.status(j)["status"] == "CANCELLED" for j in queued)
    api.post(f"cancel/{running}")


def test_health_counts_jobs_and_workers(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 0, "max": 1}})
    api.wait(api.run({"echo": 1}))
    api.wait(api.run({"fail": "x"}))
    running = api.run({"sleep_ms": 3000})
    api.wait(running, ("IN_PROGRESS",))
    api.run({"echo": 2})
    api.run({"echo": 3})
    health = api.health()
    assert health["jobs"] == {"completed": 1, "failed": 1, "inProgress": 1, "inQueue": 2,
                              "retried": 0}
    assert set(health["workers"]) == {"idle", "initializing", "ready", "running", "throttled",
                                      "unhealthy"}
    assert all(isinstance(v, int) for v in health["workers"].values())
    assert health["workers"]["running"] == 1
    api.post("purge-queue")
    api.post(f"cancel/{running}")


def test_results_expire_after_retention(basic_pod, api_for):
    api = api_for(basic_pod)
    api.settings(run_retention_s=0.3, runsync_retention_s=0.2)
    job_id = api.run({"echo": 1})
    assert api.wait(job_id)["status"] == "COMPLETED"
    api.wait_gone(job_id, timeout=2)
    sync_id = api.post("runsync", {"input": {"echo": 2}}).json()["id"]
    assert api.status(sync_id)["status"] == "COMPLETED"
    api.wait_gone(sync_id, timeout=2)


def test_status_ttl_parameter_shortens_retention(api):
    job_id = api.run({"echo": 1})
    api.wait(job_id)
    r = api.get(f"status/{job_id}", params={"ttl": 200})
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED"
    api.wait_gone(job_id, timeout=2)


def test_status_and_stream_accept_post_too(api):
    job_id = api.run({"echo": 1})
    api.wait(job_id)
    assert api.post(f"status/{job_id}").json()["status"] == "COMPLETED"
    assert api.post(f"stream/{job_id}").json()["status"] == "COMPLETED"


def test_bad_requests_are_400(api):
    no_input = api.post("run", {"prompt": "x"})
    assert no_input.status_code == 400 and '"input"' in no_input.json()["error"]
    not_json = api.http.post(f"/v2/{api.endpoint}/run", content=b"{nope",
                             headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    bad_policy = api.post("run", {"input": {}, "policy": {"ttl": "soon"}})
    assert bad_policy.status_code == 400 and "policy.ttl" in bad_policy.json()["error"]
    bad_wait = api.post("runsync?wait=later", {"input": {}})
    assert bad_wait.status_code == 400


def test_unknown_endpoint_and_job_are_404(api):
    r = api.http.get("/v2/no-such-endpoint/health")
    assert r.status_code == 404 and r.json() == {"error": "endpoint no-such-endpoint not found"}
    r = api.get("status/00000000-0000-4000-8000-000000000000-e1")
    assert r.status_code == 404 and "error" in r.json()
    assert api.post("cancel/nope").status_code == 404
    assert api.get("stream/nope").status_code == 404
    assert api.http.get("/v2/basic-sim01/no-such-route").status_code == 404


def test_oversized_bodies_are_413(api):
    big_run = json.dumps({"input": {"blob": "x" * 10_000_100}})
    r = api.http.post(f"/v2/{api.endpoint}/run", content=big_run,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "10,000,000-byte limit" in r.json()["error"]
    big_sync = json.dumps({"input": {"blob": "x" * 20_000_100}})
    r = api.http.post(f"/v2/{api.endpoint}/runsync", content=big_sync,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "20,000,000-byte limit" in r.json()["error"]


class _Receiver(BaseHTTPRequestHandler):
    bodies: list
    answers: list

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _receiver(answers: list[int]):
    handler = type("Receiver", (_Receiver,), {"bodies": [], "answers": list(answers)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler.bodies


def test_webhook_gets_the_status_body(api):
    server, bodies = _receiver([200])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=t"
        job_id = api.run({"echo": "w"}, webhook=url)
        final = api.wait(job_id)
        wait_until(lambda: bodies, what="webhook call")
        assert bodies[0] == final
    finally:
        server.shutdown()


def test_webhook_is_retried_after_a_failure(basic_pod, api_for):
    api = api_for(basic_pod)
    api.settings(webhook_retry_s=0.05)
    server, bodies = _receiver([500, 500, 200])
    try:
        job_id = api.run({"echo": "w"}, webhook=f"http://127.0.0.1:{server.server_address[1]}/")
        api.wait(job_id)
        wait_until(lambda: len(bodies) == 3, what="three webhook attempts")
        assert all(b["id"] == job_id and b["status"] == "COMPLETED" for b in bodies)
    finally:
        server.shutdown()


def test_admin_jobs_lists_what_the_simulator_holds(api):
    job_id = api.run({"echo": "listed"})
    api.wait(job_id)
    everything = api.http.get("/admin/jobs").json()["jobs"]
    mine = api.http.get("/admin/jobs", params={"endpoint_id": api.endpoint}).json()["jobs"]
    other = api.http.get("/admin/jobs", params={"endpoint_id": "image-sim01"}).json()["jobs"]
    row = next(j for j in mine if j["id"] == job_id)
    assert row["endpointId"] == api.endpoint and row["status"] == "COMPLETED"
    assert row["sync"] is False and row["submittedAt"].endswith("Z")
    assert len(everything) >= len(mine) and all(j["id"] != job_id for j in other)
