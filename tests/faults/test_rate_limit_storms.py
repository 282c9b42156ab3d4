"""429 storms: reads are retried (honouring Retry-After) and the job still ends COMPLETED; a /run
that RunPod refuses is recorded SUBMIT_FAILED and never turns into a second job."""
from __future__ import annotations

from tests.faults.steps import USER, refused_submit
from tests.support.waiting import wait_until


def test_status_reads_ride_out_a_429_storm(admin, client, make_tracker):
    tracker = make_tracker(client.client)
    # The cold start (0.24 s) plus 0.4 s of work leaves the storm time to hit the polls.
    record = tracker.submit("basic", {"sleep_ms": 400, "echo": "storm"}, kind="test", user=USER,
                            idempotency_key="storm-read")
    admin.faults(http_429_rate=1.0)
    status_path = f"/status/{record.runpod_id}"
    # Two whole polls refused: each is 1 try + 3 retries, every one answered 429.
    wait_until(lambda: client.attempts_on("GET", status_path).count(429) >= 8, what="two refused polls")
    during = tracker.store.get(record.local_id)
    assert during.status in ("IN_QUEUE", "IN_PROGRESS"), "a storm must not change the recorded state"
    assert during.runpod_id == record.runpod_id

    admin.faults(http_429_rate=0)
    final, = tracker.wait_for([record.local_id], timeout_s=10)

    assert final.status == "COMPLETED"
    assert final.output["echo"] == "storm"
    statuses = client.attempts_on("GET", status_path)
    assert statuses[-1] == 200
    longest_run, run = 0, 0
    for status in statuses:
        run = run + 1 if status == 429 else 0
        longest_run = max(longest_run, run)
    assert longest_run >= 4, "each read is tried 1 + max_retries times before the poll gives up"
    assert client.sleeps and set(client.sleeps) == {1.0}, "the client waits what Retry-After says"
    assert client.attempts_on("POST", "/run") == [200]
    assert len(admin.jobs()) == 1


def test_run_refused_by_a_429_storm_is_recorded_submit_failed_once(admin, client, make_tracker):
    tracker = make_tracker(client.client)
    admin.faults(http_429_rate=1.0)

    record = refused_submit(tracker, "refused", "storm-run")
    assert record.runpod_id is None
    assert "HTTP 429" in record.error and "retry" in record.error
    assert client.attempts_on("POST", "/run") == [429, 429, 429, 429]
    assert admin.jobs() == []
    # A rerun of the same request (same idempotency key) returns the record; nothing is sent.
    again = tracker.submit("basic", {"echo": "refused"}, kind="test", user=USER, idempotency_key="storm-run")
    assert again.local_id == record.local_id and again.status == "SUBMIT_FAILED"
    assert len(client.attempts_on("POST", "/run")) == 4
    assert [r.local_id for r in tracker.store.list()] == [record.local_id]
    assert [h.status for h in tracker.store.history(record.local_id)] == ["PENDING", "SUBMIT_FAILED"]


def test_run_refused_twice_then_accepted_makes_exactly_one_job(admin, proxy, proxied_client, make_tracker):
    # The proxy answers 429 without forwarding: RunPod surely has nothing, so resending is safe.
    proxy.add("POST", "/run", proxy.REFUSE_429, times=2)
    tracker = make_tracker(proxied_client.client)

    record = tracker.submit("basic", {"echo": "third time"}, kind="test", user=USER,
                            idempotency_key="storm-then-ok")
    final, = tracker.wait_for([record.local_id], timeout_s=10)

    assert proxy.seen("POST", "/run") == [proxy.REFUSE_429, proxy.REFUSE_429, proxy.PASS]
    assert final.status == "COMPLETED" and final.output["echo"] == "third time"
    assert [job["id"] for job in admin.jobs()] == [record.runpod_id]
