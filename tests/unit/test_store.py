from datetime import UTC, datetime, timedelta

import pytest

from lib.store import DuplicateSubmission, JobStore, payload_hash


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path)
    yield s
    s.close()


def make(store, key="k1", **kw):
    args = dict(role="image", endpoint_id="ep1", kind="zimage", user="ana@example.com",
                input={"workflow": {"1": {}}}, idempotency_key=key, meta={"character": "ava"})
    args.update(kw)
    return store.create(**args)


def test_create_records_pending_before_send(store):
    rec = make(store)
    assert rec.status == "PENDING" and rec.runpod_id is None
    assert rec.character == "ava"
    assert rec.payload_hash == payload_hash({"workflow": {"1": {}}})
    assert [h.status for h in store.history(rec.local_id)] == ["PENDING"]


def test_same_idempotency_key_is_refused(store):
    rec = make(store)
    with pytest.raises(DuplicateSubmission) as info:
        make(store)
    assert info.value.record.local_id == rec.local_id
    assert len(store.list()) == 1


def test_status_updates_history_and_final_fields(store):
    rec = make(store)
    store.mark_submitted(rec.local_id, "rp-1", "IN_QUEUE")
    rec, changed = store.update_from_runpod(rec.local_id, status="IN_PROGRESS", delay_ms=1200,
                                            execution_ms=None, worker_id="w1", retries=0,
                                            output={"step": 2}, error=None, cold_start=False)
    assert changed and rec.progress == {"step": 2} and rec.output is None
    rec, changed = store.update_from_runpod(rec.local_id, status="IN_PROGRESS", delay_ms=1200,
                                            execution_ms=None, worker_id="w1", retries=0,
                                            output={"step": 3}, error=None)
    assert not changed and rec.progress == {"step": 3}
    rec, _ = store.update_from_runpod(rec.local_id, status="COMPLETED", delay_ms=1200,
                                      execution_ms=4100, worker_id="w1", retries=0,
                                      output={"images": []}, error=None, cost_usd=0.00155)
    assert rec.is_final and rec.finished_at is not None and rec.output == {"images": []}
    assert rec.cost_usd == pytest.approx(0.00155)
    assert [h.status for h in store.history(rec.local_id)] == ["PENDING", "IN_QUEUE", "IN_PROGRESS",
                                                               "COMPLETED"]
    assert store.unfinished() == []


def test_outputs_are_kept_as_files_and_counted(store):
    rec = make(store)
    out = store.save_output(rec.local_id, "../../evil.png", b"\x89PNG", "image/png", {"seed": 1})
    assert out.path.parent == store.outputs_dir / rec.local_id and out.name == "evil.png"
    assert store.get(rec.local_id).images == 1
    assert store.outputs(rec.local_id)[0].meta == {"seed": 1}


def test_list_filters_and_frame(store):
    a = make(store, "a")
    make(store, "b", role="special", kind="faceswap", user="bo@example.com")
    store.mark_local(a.local_id, "SUBMIT_FAILED", "401")
    assert [r.kind for r in store.list(role="special")] == ["faceswap"]
    assert [r.status for r in store.list(status=["SUBMIT_FAILED"])] == ["SUBMIT_FAILED"]
    assert store.list(status=[]) == []
    assert store.users() == ["ana@example.com", "bo@example.com"]
    frame = store.jobs_frame()
    assert set(frame.columns) >= {"local_id", "role", "submitted_at", "delay_ms", "execution_ms",
                                  "images", "cold_start", "cost_usd", "simulated", "character"}
    assert str(frame["submitted_at"].dtype) == "datetime64[ns, UTC]"
    future = datetime.now(UTC) + timedelta(days=1)
    assert len(store.jobs_frame(since=future)) == 0


def test_import_history_is_simulated_and_idempotent(store):
    row = {"local_id": "seed-1", "role": "image", "endpoint_id": "e", "status": "COMPLETED",
           "kind": "flux", "user": "u", "created_at": 1_700_000_000.0, "execution_ms": 5000,
           "delay_ms": 100, "images": 1, "cost_usd": 0.00155}
    store.import_history([row])
    store.import_history([row])
    frame = store.jobs_frame()
    assert len(frame) == 1 and bool(frame["simulated"].iloc[0])
    assert store.unfinished() == []


def test_audit_and_flags(store):
    store.audit("ana", "purge", "ep1", {"removed": 3})
    entry = store.audit_entries(action="purge")[0]
    assert entry.user == "ana" and entry.detail == {"removed": 3}
    assert store.flag("x") is None
    store.set_flag("x", "1")
    assert store.flag("x") == "1"


def test_survives_reopen(tmp_path):
    s = JobStore(tmp_path)
    rec = make(s)
    s.close()
    again = JobStore(tmp_path)
    assert again.get(rec.local_id).status == "PENDING"
    again.close()


def test_display_copy_shortens_base64():
    from lib.overview import for_display
    shown = for_display({"images": [{"image": "A" * 5000}], "seed": 1})
    assert shown["seed"] == 1 and shown["images"][0]["image"].endswith("(5,000 characters)")


def test_audit_actions_lists_what_was_recorded(store):
    store.audit("a", "endpoint.apply", "ep")
    store.audit("a", "submit", "j")
    store.audit("b", "submit", "k")
    assert store.audit_actions() == ["endpoint.apply", "submit"]


def test_summaries_list_the_same_jobs_as_records_without_their_json(tmp_path):
    """The Jobs table reads JobSummary rows: the same jobs, order and columns as JobRecord, no JSON decoded."""
    store = JobStore(tmp_path)
    try:
        for i in range(5):
            record = store.create(role="image" if i % 2 else "training", endpoint_id="e", kind="generate",
                                  user=f"u{i % 2}@x", input={"workflow": {"n": i}}, idempotency_key=f"k{i}",
                                  meta={"character": f"c{i}"})
            store.mark_submitted(record.local_id, f"rp-{i}", "IN_QUEUE")
        store.update_from_runpod(record.local_id, status="COMPLETED", delay_ms=12, execution_ms=3400,
                                 worker_id="w9", retries=0, output={}, error=None)
        for filters in ({}, {"role": "image"}, {"user": "u0@x"}, {"status": ["COMPLETED"]}):
            records, summaries = store.list(**filters), store.summaries(**filters)
            assert [s.local_id for s in summaries] == [r.local_id for r in records]
            for s, r in zip(summaries, records, strict=True):
                assert (s.role, s.kind, s.status, s.user, s.character, s.created_at, s.delay_ms, s.execution_ms,
                        s.worker_id, s.cost_usd, s.simulated) == (
                    r.role, r.kind, r.status, r.user, r.character, r.created_at, r.delay_ms, r.execution_ms,
                    r.worker_id, r.cost_usd, r.simulated)
    finally:
        store.close()


def test_the_jobs_pages_user_choices_come_from_an_index_not_a_walk_over_every_job(store):
    # A year of jobs is 100,000 rows of 4 KB workflows: scanning them for "Who" took 0.2 s per Jobs page run.
    make(store, "a")
    plan = " ".join(str(row[-1]) for row in store._reader.execute(
        "EXPLAIN QUERY PLAN SELECT DISTINCT user FROM jobs ORDER BY user"))
    assert "COVERING INDEX" in plan, plan


def test_spend_sums_the_recorded_costs_of_a_window_without_reading_rows(store):
    now = datetime.now(UTC)
    store.import_history([
        {"local_id": f"j{i}", "role": "image", "endpoint_id": "ep", "status": "COMPLETED", "kind": "zimage",
         "user": "ana@example.com", "created_at": (now - timedelta(hours=hours)).timestamp(), "cost_usd": cost}
        for i, (hours, cost) in enumerate([(1, 0.25), (2, 0.5), (3, None), (30, 9.0)])])
    assert store.spend(since=now - timedelta(hours=24), until=now) == pytest.approx(0.75)
    assert store.spend() == pytest.approx(9.75)
    assert store.spend(since=now) == 0.0
