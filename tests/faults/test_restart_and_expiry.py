"""The console restarting mid-job (it resumes, keeps the result, submits nothing twice) or between
recording and sending (UNKNOWN, nothing sent), and a result that expired before it was fetched."""
from __future__ import annotations


from lib.services import build_services
from lib.store import JobStore
from tests.faults.steps import USER, wait_until


def test_console_restart_mid_job_resumes_and_keeps_the_output(admin, console_settings):
    first = build_services(console_settings)
    try:
        record = first.tracker.submit("basic", {"sleep_ms": 1500, "echo": "across restarts"}, kind="test",
                                      user=USER, idempotency_key="restart-mid-job")
        wait_until(lambda: first.store.get(record.local_id).status == "IN_PROGRESS", what="job running")
    finally:
        first.close()

    second = build_services(console_settings, start_tracker=False)
    try:
        assert second.store.get(record.local_id).status == "IN_PROGRESS", "still running at the restart"
        second.tracker.start()
        final, = second.tracker.wait_for([record.local_id], timeout_s=15)
        assert final.status == "COMPLETED"
        assert final.runpod_id == record.runpod_id
        assert final.output["echo"] == "across restarts"
        assert final.cost_usd is not None
        statuses = [change.status for change in second.store.history(record.local_id)]
        assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED" and "IN_PROGRESS" in statuses
        assert [e.target for e in second.store.audit_entries(action="submit")] == [record.local_id]
    finally:
        second.close()

    assert [job["id"] for job in admin.jobs()] == [record.runpod_id], "nothing was submitted twice"
    reopened = JobStore(console_settings.data_dir)
    try:
        kept = reopened.get(record.local_id)
        assert kept.status == "COMPLETED" and kept.output["echo"] == "across restarts"
    finally:
        reopened.close()


def test_console_stopped_before_runpod_answered_marks_unknown_and_sends_nothing(admin, console_settings):
    first = build_services(console_settings, start_tracker=False)
    try:
        # What Tracker.submit writes before calling /run; the process dies right after.
        pending = first.store.create(role="basic", endpoint_id="basic-sim01", kind="test", user=USER,
                                     input={"echo": "in flight"}, idempotency_key="restart-pending")
    finally:
        first.close()

    second = build_services(console_settings)
    try:
        record = second.store.get(pending.local_id)
        assert record.status == "UNKNOWN"
        assert "restarted before RunPod confirmed" in record.error
        assert second.tracker.tracked() == 0
    finally:
        second.close()
    assert admin.jobs() == [], "an unconfirmed submission is never resent blindly"


def test_result_expired_before_it_was_fetched_is_recorded_expired(admin, client, make_tracker):
    admin.settings(run_retention_s=0)
    # Polled by hand: the job must vanish unseen. retention_s=0: the simulator keeps no result.
    tracker = make_tracker(client.client, start=False, retention_s=0)
    record = tracker.submit("basic", {"sleep_ms": 20, "echo": "gone"}, kind="test", user=USER,
                            idempotency_key="expired")
    assert record.status == "IN_QUEUE"
    wait_until(lambda: admin.jobs() == [], what="the simulator to finish and forget the job")
    seen = []
    tracker.add_listener(seen.append)

    assert tracker.poll_due() == 1
    assert tracker.store.get(record.local_id).status == "IN_QUEUE", "one 404 is looked at twice"
    tracker._schedule_poll(record.local_id, None, delay=0.0)
    assert tracker.poll_due() == 1
    expired = tracker.store.get(record.local_id)

    assert expired.status == "EXPIRED"
    assert expired.is_final and expired.finished_at is not None
    assert "RunPod keeps results 30 min" in expired.error
    assert client.attempts_on("GET", f"/status/{record.runpod_id}") == [404, 404], "a 404 is not retried"
    assert [r.status for r in seen] == ["EXPIRED"]
    assert tracker.tracked() == 0
    assert tracker.poll_due() == 0
