"""A damaged store (a corrupt row, a garbage file, another program's database) and a second
console on the same CONSOLE_DATA."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from lib.services import DataDirInUse, build_services
from lib.store import ForeignStore, JobStore
from tests.faults.conftest import ROOT
from tests.faults.steps import USER


def test_a_corrupt_row_is_skipped_and_reported_and_the_rest_is_followed(admin, console_settings):
    first = build_services(console_settings)
    try:
        ids = [first.tracker.submit("basic", {"sleep_ms": 500, "echo": f"row-{i}"}, kind="test", user=USER,
                                    idempotency_key=f"row-{i}").local_id for i in range(2)]
        assert all(not first.store.get(i).is_final for i in ids)
    finally:
        first.close()
    with sqlite3.connect(console_settings.data_dir / "console.sqlite") as db:
        db.execute("UPDATE jobs SET input_json='{\"broken' WHERE local_id=?", (ids[0],))

    second = build_services(console_settings)
    try:
        good, = second.tracker.wait_for([ids[1]], timeout_s=15)
        assert good.status == "COMPLETED" and good.output["echo"] == "row-1"
        health = second.tracker.health()
        assert health.running and health.degraded
        assert any(ids[0] in p and "damaged" in p and "input_json" in p for p in health.problems)
        assert [r.local_id for r in second.store.list()] == [ids[1]], "lists skip the damaged row"
    finally:
        second.close()


@pytest.mark.parametrize("content", [b"this is not a database, it is someone's notes\n" * 50, "sqlite-other"])
def test_a_foreign_store_file_is_refused_by_name_and_never_overwritten(tmp_path, content):
    path = tmp_path / "console.sqlite"
    if content == "sqlite-other":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
            db.execute("INSERT INTO invoices (total) VALUES (12.5)")
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(ForeignStore) as refused:
        JobStore(tmp_path)
    message = str(refused.value)
    assert str(path) in message and "CONSOLE_DATA" in message and "does not overwrite" in message
    assert path.read_bytes() == before


def test_a_second_console_on_the_same_data_is_refused_and_touches_nothing(admin, console_settings):
    first = build_services(console_settings, start_tracker=False)
    try:
        pending = first.store.create(role="basic", endpoint_id="basic-sim01", kind="test", user=USER,
                                     input={"echo": "mine"}, idempotency_key="first-console")
        # Another process: says which process holds the folder, and exits.
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from lib.services import DataDirLock, DataDirInUse\n"
             "try:\n    DataDirLock(sys.argv[1])\nexcept DataDirInUse as exc:\n    sys.exit(str(exc))",
             str(console_settings.data_dir)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert other.returncode == 1
        assert f"process {os.getpid()}" in other.stderr and "CONSOLE_DATA" in other.stderr
        # The same in-process: a second build refuses before it opens the store or starts anything.
        with pytest.raises(DataDirInUse):
            build_services(console_settings)
        assert first.store.get(pending.local_id).status == "PENDING", "its PENDING job is not marked UNKNOWN"
    finally:
        first.close()
    again = build_services(console_settings, start_tracker=False)  # released with the first console
    again.close()
