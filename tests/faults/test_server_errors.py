"""5xx bursts: reads are retried through the burst; a /run answered 503 (RunPod did not take it)
is SUBMIT_FAILED; a /run answered 500 after it reached RunPod is UNKNOWN and never resent."""
from __future__ import annotations

from tests.faults.steps import USER, refused_submit
from tests.support.waiting import wait_until


def test_status_reads_ride_out_a_5xx_burst(admin, client, make_tracker):
    tracker = make_tracker(client.client)
    record = tracker.submit("basic", {"sleep_ms": 400, "echo": "burst"}, kind="test", user=USER,
                            idempotency_key="burst-read")
    admin.faults(http_5xx_rate=1.0)
    status_path = f"/status/{record.runpod_id}"
    wait_until(lambda: client.attempts_on("GET", status_path).count(503) >= 8, what="two failed polls")
    assert tracker.store.get(record.local_id).status in ("IN_QUEUE", "IN_PROGRESS")

    admin.faults(http_5xx_rate=0)
    final, = tracker.wait_for([record.local_id], timeout_s=10)

    assert final.status == "COMPLETED" and final.output["echo"] == "burst"
    assert client.attempts_on("GET", status_path)[-1] == 200
    # No Retry-After on these 503s: exponential backoff 0.5 s, 1 s, 2 s (less up to 25 % jitter).
    assert len(client.sleeps) >= 3
    for pause, base in zip(client.sleeps[:3], (0.5, 1.0, 2.0), strict=False):
        assert 0.75 * base <= pause <= base
    assert len(admin.jobs()) == 1


def test_run_answered_503_is_submit_failed_and_not_on_runpod(admin, client, make_tracker):
    tracker = make_tracker(client.client)
    admin.faults(http_5xx_rate=1.0)

    record = refused_submit(tracker, "503", "burst-run")
    assert "HTTP 503" in record.error and "try again later" in record.error
    # 503 means RunPod did not take the job, so the client may resend: 1 try + 3 retries.
    assert client.attempts_on("POST", "/run") == [503] * 4
    assert admin.jobs() == []


def test_run_answered_500_after_reaching_runpod_is_unknown_and_never_resent(
        admin, proxy, proxied_client, make_tracker):
    proxy.add("POST", "/run", proxy.HTTP_500_AFTER)
    tracker = make_tracker(proxied_client.client)

    record = tracker.submit("basic", {"echo": "500"}, kind="test", user=USER, idempotency_key="burst-500")

    assert record.status == "UNKNOWN"
    assert record.runpod_id is None
    assert "may still run" in record.error and "check the endpoint's queue" in record.error
    assert proxy.seen("POST", "/run") == [proxy.HTTP_500_AFTER], "a /run that got a 500 is never resent"
    on_runpod = admin.wait_job(lambda job: job["status"] == "COMPLETED")
    assert on_runpod["output"]["echo"] == "500"
    assert len(admin.jobs()) == 1
    # The same request again returns the UNKNOWN record instead of sending a second job.
    again = tracker.submit("basic", {"echo": "500"}, kind="test", user=USER, idempotency_key="burst-500")
    assert again.local_id == record.local_id and again.status == "UNKNOWN"
    assert len(proxy.seen("POST", "/run")) == 1
    assert tracker.tracked() == 0, "an UNKNOWN job has no RunPod id to poll"
