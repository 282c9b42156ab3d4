"""The network drops during a submit or a poll (a TCP proxy resets the connection).

A /run whose connection broke may or may not have reached RunPod: the console records UNKNOWN,
never resends, and the simulator holds at most one job. Reads are simply retried.
"""
from __future__ import annotations

from tests.faults.steps import USER


def test_connection_reset_after_the_run_reached_runpod(admin, proxy, proxied_client, make_tracker):
    proxy.add("POST", "/run", proxy.DROP_AFTER)
    tracker = make_tracker(proxied_client.client)

    record = tracker.submit("basic", {"echo": "lost answer"}, kind="test", user=USER,
                            idempotency_key="drop-after")

    assert record.status == "UNKNOWN"
    assert "did not confirm the submission" in record.error
    assert "check the endpoint's queue before submitting again" in record.error
    assert proxy.seen("POST", "/run") == [proxy.DROP_AFTER]
    assert len(admin.jobs()) == 1, "the job exists on RunPod exactly once"
    again = tracker.submit("basic", {"echo": "lost answer"}, kind="test", user=USER,
                           idempotency_key="drop-after")
    assert again.local_id == record.local_id
    assert len(proxy.seen("POST", "/run")) == 1
    assert len(admin.jobs()) == 1


def test_connection_reset_before_the_run_reached_runpod(admin, proxy, proxied_client, make_tracker):
    proxy.add("POST", "/run", proxy.DROP_BEFORE)
    tracker = make_tracker(proxied_client.client)

    record = tracker.submit("basic", {"echo": "never arrived"}, kind="test", user=USER,
                            idempotency_key="drop-before")

    # From the client's side this is the same broken connection: it cannot tell, so UNKNOWN.
    assert record.status == "UNKNOWN"
    assert proxy.seen("POST", "/run") == [proxy.DROP_BEFORE]
    assert admin.jobs() == []


def test_status_reads_are_retried_over_dropped_connections(admin, proxy, proxied_client, make_tracker):
    proxy.add("GET", "", proxy.DROP_AFTER, times=3)
    tracker = make_tracker(proxied_client.client)

    record = tracker.submit("basic", {"sleep_ms": 50, "echo": "bumpy"}, kind="test", user=USER,
                            idempotency_key="drop-reads")
    final, = tracker.wait_for([record.local_id], timeout_s=10)

    reads = proxy.seen("GET", f"/status/{record.runpod_id}")
    assert reads[:3] == [proxy.DROP_AFTER] * 3 and proxy.PASS in reads
    assert final.status == "COMPLETED" and final.output["echo"] == "bumpy"
    assert len(proxied_client.sleeps) >= 3, "each dropped read was retried after a pause"
    assert len(admin.jobs()) == 1
