"""The console's own disk misbehaving: the store locked by another process (a backup tool, the
sqlite3 shell), the disk full while outputs are saved, an error while a result is recorded.
Each asserts: no job lost, none submitted twice, every output kept, tracking alive afterwards."""
from __future__ import annotations

import base64
import contextlib
import threading
from types import SimpleNamespace

import pytest

from lib import inference
from lib.runpod import Job, JobStatus
from lib.store import JobStore
from lib.workflows import load_template
from tests.faults.breakers import FullDisk, store_locked_by_another_process
from tests.faults.steps import USER
from tests.support.fakes import FakeJobs
from tests.support.waiting import wait_until

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()


def completed_at_once(job_id: str) -> Job:
    return Job(id=job_id, status=JobStatus.COMPLETED, execution_time_ms=10, output={"ok": job_id})


def submit(tracker, n: int, prefix: str, sleep_ms: int = 50) -> list[str]:
    return [tracker.submit("basic", {"sleep_ms": sleep_ms, "echo": f"{prefix}-{i}"}, kind="test", user=USER,
                           idempotency_key=f"{prefix}-{i}").local_id for i in range(n)]


def assert_completed_once(tracker, admin, local_ids: list[str]) -> None:
    records = tracker.wait_for(local_ids, timeout_s=20)
    assert [r.status for r in records] == ["COMPLETED"] * len(local_ids)
    assert all(r.output["echo"] == r.idempotency_key for r in records), "each job kept its own result"
    on_runpod = [job["id"] for job in admin.jobs()]
    assert sorted(on_runpod) == sorted(r.runpod_id for r in records), "nothing submitted twice"


def test_store_locked_8s_by_another_process_loses_nothing(admin, client, make_tracker, tmp_path):
    tracker = make_tracker(client.client)
    before = submit(tracker, 3, "before-lock", sleep_ms=300)
    with store_locked_by_another_process(tracker.store.path, 8.0):
        # The jobs finish on RunPod while the console cannot write: each write waits the lock out.
        wait_until(lambda: all(j["status"] == "COMPLETED" for j in admin.jobs()), timeout_s=10,
                   what="RunPod to finish the jobs during the lock")
    assert_completed_once(tracker, admin, before)
    after = submit(tracker, 2, "after-lock")
    assert_completed_once(tracker, admin, before + after)
    assert tracker.health().running


def test_store_locked_longer_than_any_wait_degrades_then_resumes(admin, client, make_tracker, tmp_path):
    """The 60 s case, scaled: the store waits 0.3 s (not 10 s) and the lock lasts 3 s (not 60 s)."""
    store = JobStore(tmp_path / "console", lock_wait_s=0.3)
    tracker = make_tracker(client.client, store=store)
    jobs = submit(tracker, 2, "long-lock", sleep_ms=200)
    with store_locked_by_another_process(store.path, 3.0):
        wait_until(lambda: tracker.health().degraded, timeout_s=5, what="tracking to report the locked store")
        health = tracker.health()
        assert health.running
        assert any("locked by another program" in p and str(store.path) in p for p in health.problems)
        assert all(store.get(i).status != "COMPLETED" for i in jobs)
    assert_completed_once(tracker, admin, jobs)
    wait_until(lambda: not tracker.health().degraded, timeout_s=5, what="the problem to clear")


def held_elsewhere(lock) -> bool:
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


def test_pages_keep_reading_while_a_write_waits_out_the_lock(tmp_path):
    store = JobStore(tmp_path, lock_wait_s=10)
    store.create(role="image", endpoint_id="image-sim01", kind="test", user=USER, input={}, idempotency_key="r")
    with store_locked_by_another_process(store.path, 3.0) as holder:
        writer = threading.Thread(target=store.audit, args=(USER, "waits for the lock"))
        writer.start()
        wait_until(lambda: held_elsewhere(store._lock), what="the writer to wait on the lock")
        assert len(store.list()) == 1 and store.jobs_frame().shape[0] == 1
        assert writer.is_alive() and holder.poll() is None, "read while the write still waited"
    writer.join()
    assert [e.action for e in store.audit_entries()] == ["waits for the lock"]
    store.close()


def test_a_runpod_id_the_locked_store_refused_is_kept_and_written_later(make_tracker, tmp_path):
    """/run succeeded, then the store stayed locked past its wait: the job must not become a
    PENDING record with its RunPod id lost (UNKNOWN at the next start)."""
    store = JobStore(tmp_path / "console", lock_wait_s=0.3)
    lock = contextlib.ExitStack()

    class LockingEndpoint(FakeJobs):
        def run(self, input, *, policy=None, webhook=None):
            job = super().run(input, policy=policy, webhook=webhook)
            lock.enter_context(store_locked_by_another_process(store.path, 1.5))  # right after RunPod took it
            return job

    jobs = LockingEndpoint(final=completed_at_once)
    tracker = make_tracker(jobs, store=store)
    with lock:
        record = tracker.submit("image", {"n": 1}, kind="test", user=USER, idempotency_key="locked-after-run")
        assert record.status == "PENDING" and any("locked" in p for p in tracker.health().problems)
    final, = tracker.wait_for([record.local_id], timeout_s=10)
    assert (final.status, final.runpod_id, final.output) == ("COMPLETED", "rp-0", {"ok": "rp-0"})
    assert len(jobs.runs) == 1


def test_disk_full_while_saving_outputs_shows_then_keeps_them_when_space_returns(make_tracker, monkeypatch):
    disk = FullDisk(monkeypatch)
    jobs = FakeJobs(final=lambda job_id: Job(id=job_id, status=JobStatus.COMPLETED, execution_time_ms=900,
                                             output={"images": [{"filename": f"{job_id}.png", "type": "base64",
                                                                 "data": PNG}]}))
    tracker = make_tracker(jobs)
    store = tracker.store
    ids = [tracker.submit("image", {"n": i}, kind="test", user=USER, idempotency_key=f"full-{i}").local_id
           for i in range(3)]
    wait_until(lambda: disk.refused >= 3, what="the full disk to refuse the outputs")
    health = tracker.health()
    assert health.running and any("is full" in p for p in health.problems), health
    assert all(not store.get(i).is_final for i in ids), "no job is final without its outputs"
    disk.full = False
    records = tracker.wait_for(ids, timeout_s=10)
    assert [r.status for r in records] == ["COMPLETED"] * 3
    assert all(r.images == 1 and r.error is None for r in records)
    assert all(store.outputs(i)[0].path.read_bytes().startswith(b"\x89PNG") for i in ids)
    wait_until(lambda: not tracker.health().degraded, what="the disk problem to clear")
    assert len(jobs.runs) == 3


def test_an_error_while_recording_a_result_is_retried_and_tracking_goes_on(make_tracker, monkeypatch):
    jobs = FakeJobs(final=completed_at_once)
    failures = {"left": 3}
    real_update = JobStore.update_from_runpod

    def flaky_update(self, local_id, **fields):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("simulated failure while recording")
        return real_update(self, local_id, **fields)

    monkeypatch.setattr(JobStore, "update_from_runpod", flaky_update)
    tracker = make_tracker(jobs)
    ids = [tracker.submit("image", {"n": i}, kind="test", user=USER, idempotency_key=f"flaky-{i}").local_id
           for i in range(4)]
    records = tracker.wait_for(ids, timeout_s=10)
    assert [r.status for r in records] == ["COMPLETED"] * 4
    assert tracker.health().running
    later = tracker.submit("image", {"n": 9}, kind="test", user=USER, idempotency_key="flaky-later")
    assert tracker.wait_for([later.local_id], timeout_s=10)[0].status == "COMPLETED"


def break_the_loop(tracker, error: BaseException, times: int) -> None:
    """The loop's next `times` turns raise `error` before they dispatch anything."""
    real_dispatch = tracker._dispatch_due
    left = [times]

    def broken_dispatch(*args, **kwargs):
        if left[0] > 0:
            left[0] -= 1
            raise error
        return real_dispatch(*args, **kwargs)

    tracker._dispatch_due = broken_dispatch


def test_the_loop_restarts_when_it_fails_and_says_so(make_tracker):
    tracker = make_tracker(FakeJobs(final=completed_at_once), start=False)
    break_the_loop(tracker, RuntimeError("a bug in the loop"), times=2)
    tracker.start()
    record = tracker.submit("image", {}, kind="test", user=USER, idempotency_key="loop")
    assert tracker.wait_for([record.local_id], timeout_s=10)[0].status == "COMPLETED"
    health = tracker.health()
    assert health.running and any("restarted" in p and "a bug in the loop" in p for p in health.problems)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_a_dead_tracking_thread_is_seen_and_restarted(make_tracker):
    tracker = make_tracker(FakeJobs(final=completed_at_once), start=False)
    # Not an Exception: it passes the supervisor and ends the thread.
    break_the_loop(tracker, SystemExit("something ended the thread"), times=1)
    tracker.start()
    record = tracker.submit("image", {}, kind="test", user=USER, idempotency_key="dead-thread")
    wait_until(lambda: not tracker._thread.is_alive(), what="the thread to die")
    health = tracker.health()  # what Overview asks on every refresh
    assert any("had stopped and was restarted" in p for p in health.problems)
    assert tracker.wait_for([record.local_id], timeout_s=10)[0].status == "COMPLETED"
    assert tracker.health().running


def test_generating_while_the_store_is_locked_says_so_and_sends_nothing(make_tracker, tmp_path, fault_config):
    store = JobStore(tmp_path / "console", lock_wait_s=0.3)
    jobs = FakeJobs(final=lambda job_id: Job(id=job_id, status=JobStatus.IN_QUEUE))
    svc = SimpleNamespace(store=store, tracker=make_tracker(jobs, store=store), config=fault_config,
                          data_dir=tmp_path)
    planned = inference.plan_images(load_template("z_image_turbo_lora"), {"prompt": "ava", "seed": 1}, count=2,
                                    random_seed=False)
    with store_locked_by_another_process(store.path, 2.0):
        result = inference.submit(svc, planned, user_email=USER, request_key="locked", kind="zimage")
    assert result.records == [] and jobs.runs == []
    assert len(result.errors) == 1 and "Could not record the job" in result.errors[0]
    assert "locked by another program" in result.errors[0]


def test_a_periodic_task_stuck_on_the_store_never_holds_the_polls(make_tracker):
    """Alert rules and warm-hold releases run beside the loop: one waiting on a locked store
    (here: on an event) leaves every job's poll alone."""
    jobs = FakeJobs(final=completed_at_once)
    tracker = make_tracker(jobs)
    stuck, release = threading.Event(), threading.Event()

    def alert_rules():
        stuck.set()
        release.wait(10)

    tracker.add_periodic(alert_rules, 60)
    try:
        wait_until(stuck.is_set, what="the periodic task to start")
        record = tracker.submit("image", {}, kind="test", user=USER, idempotency_key="beside-periodic")
        assert tracker.wait_for([record.local_id], timeout_s=5)[0].status == "COMPLETED"
    finally:
        release.set()
