"""A worker crashing mid-job: RunPod re-queues the job once (retries + 1); a second crash fails it.
Either way the console records the final state, the retry count and the outcome."""
from __future__ import annotations

from tests.faults.steps import USER


def test_crash_once_then_the_retry_completes(admin, client, make_tracker):
    tracker = make_tracker(client.client)
    # A slow cold start (250 simulated s = 0.5 s here) keeps the re-queued job waiting for a new
    # worker long enough for the test to clear the fault before the second attempt starts.
    admin.faults(crash_rate=1.0, extra_cold_start_s=250)
    record = tracker.submit("basic", {"sleep_ms": 100, "echo": "survivor"}, kind="test", user=USER,
                            idempotency_key="crash-once")
    requeued = admin.wait_job(lambda job: job.get("retries", 0) >= 1)
    admin.faults(crash_rate=0)
    assert requeued["status"] == "IN_QUEUE", "the crashed job goes back to the queue, it is not failed"

    final, = tracker.wait_for([record.local_id], timeout_s=15)

    assert final.status == "COMPLETED"
    assert final.retries == 1
    assert final.output["echo"] == "survivor"
    assert final.execution_ms is not None and final.cost_usd is not None
    assert [job["id"] for job in admin.jobs()] == [record.runpod_id], "RunPod retried it under the same id"
    assert client.attempts_on("POST", "/run") == [200], "the console itself never resubmitted"


def test_crash_twice_fails_the_job_and_the_console_records_why(admin, client, make_tracker):
    tracker = make_tracker(client.client)
    admin.faults(crash_rate=1.0)
    record = tracker.submit("basic", {"sleep_ms": 50, "echo": "doomed"}, kind="test", user=USER,
                            idempotency_key="crash-twice")

    final, = tracker.wait_for([record.local_id], timeout_s=15)

    assert final.status == "FAILED"
    assert final.retries == 1
    assert final.error == "worker exited unexpectedly"
    assert final.finished_at is not None
    assert tracker.store.history(record.local_id)[-1].status == "FAILED"
    assert len(admin.jobs()) == 1
    assert client.attempts_on("POST", "/run") == [200]
