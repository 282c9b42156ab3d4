"""AppTest: Overview says when job tracking is degraded, with the reason; a console that cannot
start (CONSOLE_DATA held by another console) says why instead of a traceback."""
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from lib.services import DataDirInUse
from lib.ui import deps
from tests.app.conftest import APP


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
