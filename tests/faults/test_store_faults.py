"""The console's own disk misbehaving: the store locked by another process (a backup tool, the
sqlite3 shell), the disk full while outputs are saved, an error while a result is recorded.
Each asserts: no job lost, none submitted twice, every output kept, tracking alive afterwards."""
from __future__ import annotations

import base64
import threading

from lib.runpod import Job, JobStatus
from lib.store import JobStore
from lib.tracker import PollSchedule, Tracker
from tests.faults.breakers import FullDisk, store_locked_by_another_process
from tests.faults.steps import USER, wait_until

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()
QUICK = PollSchedule(first_s=0.02, factor=1.5, cap_s=0.1, training_cap_s=0.1)


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


def test_disk_full_while_saving_outputs_shows_then_keeps_them_when_space_returns(tmp_path, monkeypatch,
                                                                                fault_config):
    disk = FullDisk(monkeypatch)
    store = JobStore(tmp_path)
    jobs = ScriptedJobs(lambda job_id: Job(id=job_id, status=JobStatus.COMPLETED, execution_time_ms=900,
                                           output={"images": [{"filename": f"{job_id}.png", "type": "base64",
                                                               "data": PNG}]}))
    tracker = Tracker(store, fault_config, lambda role: jobs, schedule=QUICK).start()
    try:
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
    finally:
        tracker.stop()
        store.close()


def test_an_error_while_recording_a_result_is_retried_and_tracking_goes_on(tmp_path, monkeypatch, fault_config):
    store = JobStore(tmp_path)
    jobs = ScriptedJobs(lambda job_id: Job(id=job_id, status=JobStatus.COMPLETED, execution_time_ms=10,
                                           output={"ok": job_id}))
    failures = {"left": 3}
    real_update = JobStore.update_from_runpod

    def flaky_update(self, local_id, **fields):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("simulated failure while recording")
        return real_update(self, local_id, **fields)

    monkeypatch.setattr(JobStore, "update_from_runpod", flaky_update)
    tracker = Tracker(store, fault_config, lambda role: jobs, schedule=QUICK).start()
    try:
        ids = [tracker.submit("image", {"n": i}, kind="test", user=USER, idempotency_key=f"flaky-{i}").local_id
               for i in range(4)]
        records = tracker.wait_for(ids, timeout_s=10)
        assert [r.status for r in records] == ["COMPLETED"] * 4
        assert tracker.health().running
        later = tracker.submit("image", {"n": 9}, kind="test", user=USER, idempotency_key="flaky-later")
        assert tracker.wait_for([later.local_id], timeout_s=10)[0].status == "COMPLETED"
    finally:
        tracker.stop()
        store.close()


def test_the_loop_restarts_when_it_fails_and_says_so(tmp_path, fault_config):
    store = JobStore(tmp_path)
    jobs = ScriptedJobs(lambda job_id: Job(id=job_id, status=JobStatus.COMPLETED, execution_time_ms=10,
                                           output={"ok": job_id}))
    tracker = Tracker(store, fault_config, lambda role: jobs, schedule=QUICK)
    real_dispatch = tracker._dispatch_due
    broken = {"left": 2}

    def failing_dispatch(*args, **kwargs):
        if broken["left"] > 0:
            broken["left"] -= 1
            raise RuntimeError("a bug in the loop")
        return real_dispatch(*args, **kwargs)

    tracker._dispatch_due = failing_dispatch
    tracker.start()
    try:
        record = tracker.submit("image", {}, kind="test", user=USER, idempotency_key="loop")
        assert tracker.wait_for([record.local_id], timeout_s=10)[0].status == "COMPLETED"
        health = tracker.health()
        assert health.running and any("restarted" in p and "a bug in the loop" in p for p in health.problems)
    finally:
        tracker.stop()
        store.close()


class ScriptedJobs:
    """A RunPod endpoint whose /status answers `final(job_id)` at once."""

    def __init__(self, final):
        self.final = final
        self.runs: list[dict] = []
        self.lock = threading.Lock()

    def run(self, input, *, policy=None, webhook=None):
        with self.lock:
            self.runs.append(input)
            return Job(id=f"rp-{len(self.runs)}", status=JobStatus.IN_QUEUE)

    def status(self, job_id):
        return self.final(job_id)

