"""AppTest: Overview says when job tracking is degraded, with the reason; a console that cannot
start (CONSOLE_DATA held by another console) says why instead of a traceback."""
import sqlite3
from datetime import UTC

import pytest
from streamlit.testing.v1 import AppTest

from lib.services import DataDirInUse
from lib.ui import deps
from tests.support.pages import APP


@pytest.fixture
def damaged_job(console):
    record = console.store.create(role="image", endpoint_id="x", kind="test", user="t@example.com",
                                  input={"ok": True}, idempotency_key="apptest-damaged")
    with sqlite3.connect(console.store.path) as db:
        db.execute("UPDATE jobs SET meta_json='{nope', status='EXPIRED' WHERE local_id=?", (record.local_id,))
    db.close()
    yield record
    with sqlite3.connect(console.store.path) as db:
        db.execute("DELETE FROM jobs WHERE local_id=?", (record.local_id,))
    db.close()
    console.store.damaged.clear()


def test_overview_is_quiet_while_tracking_is_healthy(open_page, console):
    assert not console.tracker.health().degraded
    at = open_page("pages/overview.py")
    assert not any("tracking" in w.value for w in at.warning)


def test_overview_shows_degraded_tracking_with_the_reason(open_page, damaged_job):
    at = open_page("pages/overview.py")  # its recent jobs list meets the damaged row …
    at.run()  # … and the next refresh says so
    assert any("Job tracking is degraded" in w.value for w in at.warning)
    assert any(damaged_job.local_id in t.value and "meta_json" in t.value for t in at.text)
    assert not at.exception


def test_a_console_whose_data_folder_is_taken_says_so(monkeypatch):
    def taken():
        raise DataDirInUse("CONSOLE_DATA /srv/data is in use by another console (process 4242 on host)")

    monkeypatch.setattr(deps, "_build", taken)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    assert any("process 4242" in e.value and "cannot start" in e.value for e in at.error)


def _render_note(endpoint_id: str, status: str):
    """The script AppTest runs: it imports what it needs itself."""
    from lib.ui import widgets
    from tests.app.test_tracking_health import record_at
    widgets.dev_worker_note(record_at(endpoint_id, status))


def record_at(endpoint_id: str, status: str):
    from datetime import datetime

    from lib.store import JobRecord
    return JobRecord(local_id="j1", role="training", endpoint_id=endpoint_id, runpod_id="rp", status=status,
                     kind="lora", user="t@example.com", group=None, created_at=datetime.now(UTC),
                     submitted_at=None, finished_at=None, delay_ms=None, execution_ms=None, worker_id=None,
                     retries=None, payload_hash=None, input=None)


@pytest.mark.parametrize("endpoint_id,status,shown", [
    ("http://localhost:8000", "IN_PROGRESS", True), ("http://localhost:8000", "COMPLETED", False),
    ("image-sim01", "IN_PROGRESS", False)])
def test_a_job_on_a_dev_worker_says_it_reports_no_progress(endpoint_id, status, shown):
    at = AppTest.from_function(_render_note, args=(endpoint_id, status), default_timeout=30)
    at.run()
    assert not at.exception
    assert any("reports no progress" in c.value for c in at.caption) == shown
