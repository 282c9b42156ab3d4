"""kill -9 of the console at each step of submit → poll → final → outputs, then a restart on the
same CONSOLE_DATA: no job lost, none submitted twice, every output kept, tracking alive."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lib.runpod import RunPod
from lib.services import jobs_at
from lib.store import JobStore
from lib.tracker import Tracker
from tests.faults.breakers import MiniPod
from tests.faults.conftest import FAST_POLLS, KEY, ROOT
from tests.faults.steps import wait_until

# step -> (status after the restart, jobs RunPod was given)
AFTER_RESTART = {
    "recorded": ("UNKNOWN", 0),   # never sent, and never sent blindly afterwards
    "sent": ("UNKNOWN", 1),       # RunPod has it, the store had no id: a person checks, nothing resent
    "final": ("COMPLETED", 1),    # kept from the stored result
    "outputs": ("COMPLETED", 1),
}


@pytest.fixture
def minipod():
    pod = MiniPod()
    yield pod
    pod.close()


@pytest.mark.parametrize("step", sorted(AFTER_RESTART))
def test_console_killed_at_a_step_loses_nothing_on_restart(step, minipod, tmp_path, fault_config):
    data = tmp_path / "console"
    child = subprocess.run([sys.executable, "-m", "tests.faults.crashing_console", str(data), minipod.api_url, step],
                           cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == -signal.SIGKILL, child.stderr
    local_id = child.stdout.split()[0]

    client = RunPod(KEY, api_url=minipod.api_url)
    store = JobStore(data)
    tracker = Tracker(store, fault_config, lambda role: client.for_spec(fault_config.endpoint(role)),
                      jobs_at=jobs_at(client), schedule=FAST_POLLS).start()
    try:
        record, = tracker.wait_for([local_id], timeout_s=10)
        status, sent = AFTER_RESTART[step]
        assert record.status == status, record
        assert len(minipod.runs) == sent, "nothing submitted twice"
        if status == "COMPLETED":
            kept = store.outputs(local_id)
            assert [o.name for o in kept] == [f"{record.runpod_id}.png"] and record.images == 1
            assert kept[0].path.read_bytes() == b"\x89PNG\r\n\x1a\ndeterministic image"
            assert record.finished_at is not None and record.cost_usd is not None
        else:
            assert "check the endpoint" in record.error, "the reason is recorded"
        assert tracker.health().running
    finally:
        tracker.stop()
        store.close()
        client.close()


def test_a_completed_job_whose_outputs_an_older_console_never_saved_is_repaired(minipod, tmp_path, fault_config):
    """Stores written before outputs_pending: COMPLETED committed, the crash came before the files."""
    store = JobStore(tmp_path)
    record = store.create(role="basic", endpoint_id="basic-sim01", kind="test", user="old@localhost", input={},
                          idempotency_key="old-console")
    store.mark_submitted(record.local_id, "mini-old", "IN_QUEUE")
    output = {"images": [{"filename": "old.png", "type": "base64", "data": "iVBORw0KGgpvbGQ="}]}
    store.update_from_runpod(record.local_id, status="COMPLETED", delay_ms=1, execution_ms=1, worker_id="w",
                             retries=None, output=output, error=None)
    client = RunPod(KEY, api_url=minipod.api_url)
    tracker = Tracker(store, fault_config, lambda role: client.for_spec(fault_config.endpoint(role)),
                      schedule=FAST_POLLS).start()
    try:
        wait_until(lambda: store.get(record.local_id).images == 1, what="the outputs to be repaired")
        assert store.outputs(record.local_id)[0].path.read_bytes() == b"\x89PNG\r\n\x1a\nold"
        assert minipod.runs == [], "repaired from the stored result, nothing sent"
    finally:
        tracker.stop()
        store.close()
        client.close()
