"""The live queue: a user's unfinished jobs with status, phase, progress and elapsed time, and what a
cancel loses (lib/live_queue.py)."""
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lib import live_queue
from lib.store import JobStore


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path)
    yield s
    s.close()


def job(store, key, *, user="ann@x", kind="generate", status=None, meta=None):
    record = store.create(role="image", endpoint_id="e", kind=kind, user=user, input={"k": key},
                          idempotency_key=key, meta=meta or {"character": "ava"})
    if status:
        store.mark_submitted(record.local_id, f"rp-{key}", status)
    return store.get(record.local_id)


def test_only_the_users_unfinished_jobs_oldest_first(store):
    first = job(store, "a", status="IN_QUEUE")
    second = job(store, "b", status="IN_PROGRESS", kind="faceswap")
    job(store, "c", user="bob@x", status="IN_QUEUE")
    done = job(store, "d", status="IN_QUEUE")
    store.update_from_runpod(done.local_id, status="COMPLETED", delay_ms=1, execution_ms=1, worker_id="w",
                             retries=0, output={}, error=None)
    entries = live_queue.unfinished(store, "ann@x")
    assert [e.local_id for e in entries] == [first.local_id, second.local_id]
    assert [(e.what, e.status) for e in entries] == [("Image · ava", "Queued"), ("Face swap · ava", "Running")]
    assert "cold start" in entries[0].phase


def test_training_progress_names_step_and_sample_rounds(store):
    record = replace(job(store, "t", kind="training", status="IN_PROGRESS"),
                     progress={"step": 500, "total_steps": 2000,
                               "samples": [{"step": 250, "path": "a"}, {"step": 250, "path": "b"},
                                           {"step": 500, "path": "c"}],
                               "checkpoints": [{"step": 250}, {"step": 500}]})
    entry = live_queue.entry(record, record.created_at + timedelta(minutes=12))
    assert entry.phase == "step 500 of 2,000, 2 sample rounds"
    assert entry.progress == 0.25 and entry.elapsed == "12 min" and entry.is_training


def test_cancel_says_what_a_training_run_keeps_and_loses(store):
    record = replace(job(store, "t", kind="training", status="IN_PROGRESS"),
                     progress={"step": 620, "total_steps": 2000, "checkpoints": [{"step": 250}, {"step": 500}]})
    text = " ".join(live_queue.cancel_consequences(record))
    assert "step 620 of 2,000" in text and "2 checkpoint(s)" in text and "120 steps after it are lost" in text
    assert "RunPod bills the worker time used so far" in text
    bare = replace(record, progress={"step": 40, "total_steps": 2000})
    assert "leaves no LoRA behind" in " ".join(live_queue.cancel_consequences(bare))


def test_cancel_of_a_queued_job_loses_nothing(store):
    queued = job(store, "q", status="IN_QUEUE")
    assert live_queue.cancel_consequences(queued) == [
        "No worker has started it yet: nothing is lost and nothing more is billed."]


def test_the_queue_looks_often_while_a_short_job_may_end_and_seldom_otherwise(store):
    """Twice a second while an image job runs; every 2 s with only trainings (hours long, a tab left open);
    every 5 s with nothing in flight (lib/ui/queue_panel.py)."""
    from lib.ui import queue_panel

    training = live_queue.entry(job(store, "t", kind="training", status="IN_PROGRESS"), datetime.now(UTC))
    image = live_queue.entry(job(store, "i", kind="generate", status="IN_QUEUE"), datetime.now(UTC))
    assert queue_panel._timer([]) == queue_panel.IDLE_REFRESH == "5s"
    assert queue_panel._timer([training]) == queue_panel.TRAINING_REFRESH == "2s"
    assert queue_panel._timer([training, image]) == queue_panel.REFRESH == "500ms"
