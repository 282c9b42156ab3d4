import base64
import time
from pathlib import Path

import pytest

from lib.config import ConsoleConfig
from lib.runpod import Job, JobStatus, NotFound, PayloadTooLarge, RequestTimeout
from lib.store import JobStore
from lib.tracker import SubmitRefused, Tracker
from tests.support.fakes import FakeJobs

CONFIG = ConsoleConfig.load(Path(__file__).resolve().parents[2] / "console.toml")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path)
    yield s
    s.close()


def tracker_for(store, jobs):
    return Tracker(store, CONFIG, lambda role: jobs, max_parallel=4)


def poll_until_final(tracker, local_id, rounds=20):
    for _ in range(rounds):
        tracker._schedule_poll(local_id, None, delay=0)
        tracker.poll_due()
        if tracker.store.get(local_id).is_final:
            break
    return tracker.store.get(local_id)


def test_submit_records_first_and_never_twice(store):
    jobs = FakeJobs()
    t = tracker_for(store, jobs)
    first = t.submit("image", {"x": 1}, kind="zimage", user="ana", idempotency_key="click-1")
    second = t.submit("image", {"x": 1}, kind="zimage", user="ana", idempotency_key="click-1")
    assert first.local_id == second.local_id and len(jobs.runs) == 1
    assert first.runpod_id == "rp-0" and first.status == "IN_QUEUE"
    assert store.audit_entries(action="submit")[0].target == first.local_id


def test_refused_submission_is_marked_and_raised(store):
    t = tracker_for(store, FakeJobs(run_error=PayloadTooLarge(12_000_000, 10_000_000)))
    with pytest.raises(SubmitRefused) as info:
        t.submit("image", {"x": 1}, kind="zimage", user="ana", idempotency_key="k")
    assert info.value.record.status == "SUBMIT_FAILED" and "10.0 MB" in info.value.record.error


def test_unknown_outcome_is_never_resent(store):
    jobs = FakeJobs(run_error=RequestTimeout("no answer", outcome_unknown=True))
    t = tracker_for(store, jobs)
    rec = t.submit("image", {"x": 1}, kind="zimage", user="ana", idempotency_key="k")
    assert rec.status == "UNKNOWN" and "may still run" in rec.error
    assert store.unfinished() == []


def test_follows_job_to_completion_and_keeps_images(store):
    done = Job(id="rp-0", status=JobStatus.COMPLETED, delay_time_ms=50_000, execution_time_ms=4_200,
               worker_id="w1", retries=0,
               output={"images": [{"filename": "a_00001_.png", "type": "base64", "data": PNG}]})
    jobs = FakeJobs({"rp-0": [Job(id="rp-0", status=JobStatus.IN_PROGRESS, worker_id="w1",
                                  delay_time_ms=50_000, output={"step": 3, "total": 8}), done]})
    t = tracker_for(store, jobs)
    seen = []
    t.add_listener(lambda r: seen.append(r.status))
    rec = t.submit("image", {"x": 1}, kind="zimage", user="ana", idempotency_key="k")
    rec = poll_until_final(t, rec.local_id)
    assert rec.status == "COMPLETED" and rec.images == 1 and rec.cold_start
    # 4.2 s rounds up to 5 s, plus the idle timeout the cold-started worker bills afterwards
    idle = CONFIG.endpoint("image").idle_timeout_s
    assert rec.cost_usd == pytest.approx((5 + idle) * CONFIG.price_per_second("image"))
    assert store.outputs(rec.local_id)[0].path.read_bytes().startswith(b"\x89PNG")
    assert seen == ["IN_PROGRESS", "COMPLETED"]
    assert [h.status for h in store.history(rec.local_id)] == ["PENDING", "IN_QUEUE", "IN_PROGRESS",
                                                               "COMPLETED"]


def poll_once(tracker, local_id):
    tracker._schedule_poll(local_id, None, delay=0)
    tracker.poll_due()
    return tracker.store.get(local_id)


def test_vanished_job_expires_on_the_second_json_404_past_retention(store):
    jobs = FakeJobs({"rp-0": [NotFound("gone", status=404, body={"error": "job not found"})]})
    t = Tracker(store, CONFIG, lambda role: jobs, retention_s=0)
    rec = t.submit("image", {}, kind="zimage", user="ana", idempotency_key="k")
    assert poll_once(t, rec.local_id).status == "IN_QUEUE", "one 404 is not believed"
    rec = poll_once(t, rec.local_id)
    assert rec.status == "EXPIRED" and "30 min" in rec.error


@pytest.mark.parametrize("body,retention_s", [
    ("<html><body>404 Not Found</body></html>", 0),   # a proxy's page, not RunPod's answer
    ({"error": "job not found"}, 3600)])              # younger than RunPod's result retention
def test_a_404_that_cannot_mean_expired_never_expires_the_job(store, body, retention_s):
    jobs = FakeJobs({"rp-0": [NotFound("gone", status=404, body=body)]})
    t = Tracker(store, CONFIG, lambda role: jobs, retention_s=retention_s)
    rec = t.submit("image", {}, kind="zimage", user="ana", idempotency_key="k")
    for _ in range(4):
        assert poll_once(t, rec.local_id).status == "IN_QUEUE"


def test_transient_errors_keep_following(store):
    jobs = FakeJobs({"rp-0": [RequestTimeout("slow"), Job(id="rp-0", status=JobStatus.FAILED,
                                                          error="boom", execution_time_ms=10)]})
    t = tracker_for(store, jobs)
    rec = t.submit("image", {}, kind="zimage", user="ana", idempotency_key="k")
    rec = poll_until_final(t, rec.local_id)
    assert rec.status == "FAILED" and rec.error == "boom"


def test_restart_resumes_and_never_resends(store):
    jobs = FakeJobs()
    t = tracker_for(store, jobs)
    running = t.submit("image", {}, kind="zimage", user="ana", idempotency_key="a")
    pending = store.create(role="image", endpoint_id="e", kind="zimage", user="ana", input={},
                           idempotency_key="b")
    # a new console process on the same data
    jobs.script["rp-0"] = [Job(id="rp-0", status=JobStatus.COMPLETED, execution_time_ms=1000)]
    t2 = tracker_for(store, jobs)
    assert t2.resume() == 1
    t2.poll_due()
    assert store.get(running.local_id).status == "COMPLETED"
    assert store.get(pending.local_id).status == "UNKNOWN"
    assert len(jobs.runs) == 1


def test_cancel_and_retry(store):
    jobs = FakeJobs({"rp-0": [Job(id="rp-0", status=JobStatus.CANCELLED)]})
    t = tracker_for(store, jobs)
    rec = t.submit("image", {}, kind="zimage", user="ana", idempotency_key="a")
    assert t.cancel(rec.local_id, "ana").status == "CANCELLED" and jobs.cancels == ["rp-0"]
    with pytest.raises(ValueError):
        t.retry(rec.local_id, "ana")
    jobs.script["rp-1"] = [Job(id="rp-1", status=JobStatus.TIMED_OUT)]
    rec2 = poll_until_final(t, t.submit("image", {}, kind="zimage", user="ana",
                                        idempotency_key="b").local_id)
    assert rec2.status == "TIMED_OUT"
    again = t.retry(rec2.local_id, "ana")
    assert again.status == "IN_QUEUE" and again.runpod_id == "rp-1" and jobs.retries == ["rp-1"]
    assert {e.action for e in store.audit_entries()} >= {"cancel", "retry", "submit"}


def test_background_thread_follows_jobs(store):
    jobs = FakeJobs({"rp-0": [Job(id="rp-0", status=JobStatus.COMPLETED, execution_time_ms=1)]})
    t = Tracker(store, CONFIG, lambda role: jobs).start()
    try:
        rec = t.submit("image", {}, kind="zimage", user="ana", idempotency_key="k")
        assert t.wait_for([rec.local_id], timeout_s=5)[0].status == "COMPLETED"
    finally:
        t.stop()


def test_periodic_tasks_run_in_the_tracker_and_survive_errors(store):
    now = [0.0]
    t = Tracker(store, CONFIG, lambda role: FakeJobs(), clock=lambda: now[0])
    calls = []

    def broken():
        raise RuntimeError("rule bug")

    t.add_periodic(broken, 5)
    t.add_periodic(lambda: calls.append(now[0]), 10)
    t.run_periodic()
    now[0] = 4
    t.run_periodic()
    now[0] = 10
    t.run_periodic()
    assert calls == [0.0, 10]


def test_a_process_that_exits_stops_the_tracker_without_a_traceback(store, caplog):
    # At interpreter exit Python closes every thread pool before atexit runs the tracker's stop(); the
    # loop's next submit then raises "cannot schedule new futures after (interpreter) shutdown".
    t = Tracker(store, CONFIG, lambda role: FakeJobs())
    t._periodic_runner.shutdown(wait=True)
    t._start_thread()
    t._thread.join(timeout=5)
    assert not t._thread.is_alive()
    assert "tracking loop failed" not in caplog.text
    t.stop()


def test_many_queued_jobs_are_polled_within_the_endpoints_budget_in_queue_order(store):
    """Issue 18 goal 4: 300 jobs due at once get at most the budget's burst, the oldest first."""
    now = [0.0]
    jobs = FakeJobs()
    t = Tracker(store, CONFIG, lambda role: jobs, clock=lambda: now[0], max_parallel=4)
    ids = [t.submit("image", {"i": i}, kind="zimage", user="ana", idempotency_key=f"k{i}").local_id
           for i in range(300)]
    now[0] = 10.0
    polled = t.poll_due()
    assert 0 < polled < 300
    waiting = {lid for lid, due in t._due.items() if due.at <= now[0]}
    assert waiting == set(ids[polled:]), "the oldest submissions were polled first"


def test_the_loop_sleeps_while_the_budget_holds_polls_back(store):
    """Held polls are due but must not make the loop spin until a token comes."""
    jobs = FakeJobs()
    t = Tracker(store, CONFIG, lambda role: jobs, max_parallel=4)
    for i in range(300):
        t.submit("image", {"i": i}, kind="zimage", user="ana", idempotency_key=f"k{i}")
    rounds = [0]
    dispatch = t._dispatch_due

    def counted(only=None):
        rounds[0] += 1
        return dispatch(only)

    t._dispatch_due = counted
    t.start()
    try:
        time.sleep(2.0)
    finally:
        t.stop()
    # Each round starts at least one poll or waits for the next token: a spinning loop makes 10⁵ rounds.
    assert 10 < rounds[0] < 3000


def test_a_job_seen_starting_is_next_looked_at_near_its_kinds_usual_end(store):
    """Issue 18: the plan learns run times from completed jobs. It was told of a completion only after
    the store's listeners had already forgotten the job, so it never learnt one and a started job was
    polled on the plain backoff from 0.25 s."""
    now = [0.0]

    def status(job_id: str) -> Job:
        if job_id == "rp-0":
            return Job(id=job_id, status=JobStatus.COMPLETED, delay_time_ms=10, execution_time_ms=8_000,
                       worker_id="w1", retries=0, output={})
        return Job(id=job_id, status=JobStatus.IN_PROGRESS, worker_id="w1", delay_time_ms=10)

    jobs = FakeJobs(final=status)
    t = Tracker(store, CONFIG, lambda role: jobs, clock=lambda: now[0], max_parallel=4)
    first = t.submit("image", {"i": 0}, kind="zimage", user="ana", idempotency_key="k0")
    assert poll_once(t, first.local_id).status == "COMPLETED"
    second = t.submit("image", {"i": 1}, kind="zimage", user="ana", idempotency_key="k1")
    assert poll_once(t, second.local_id).status == "IN_PROGRESS"
    assert t._due[second.local_id].at - now[0] == pytest.approx(0.9 * 8.0, abs=0.3)
