"""A console process that kills itself (SIGKILL: no cleanup, no atexit) at a named step of one
job's life, for tests/faults/test_kill_steps.py:

    python -m tests.faults.crashing_console DATA_DIR API_URL STEP

Steps: `recorded` (in the store, /run not sent), `sent` (RunPod took it, the store does not know
its id), `final` (RunPod said COMPLETED, no output saved), `outputs` (outputs saved, the job not
yet final). It prints the job's local id before it dies."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from lib.runpod import EndpointJobs, RunPod
from lib.services import jobs_at
from lib.store import JobStore
from lib.tracker import Tracker
from tests.faults.conftest import FAST_POLLS, KEY, fault_config_now

STEPS = {  # step -> (class, method) the process dies on entering
    "recorded": (EndpointJobs, "run"),
    "sent": (JobStore, "mark_submitted"),
    "final": (JobStore, "save_output"),
    "outputs": (JobStore, "finish_outputs"),
}


def die_on(owner: type, method: str) -> None:
    def killed(*args, **kwargs):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(owner, method, killed)


def main(data_dir: str, api_url: str, step: str) -> None:
    config = fault_config_now()
    client = RunPod(KEY, api_url=api_url)
    store = JobStore(Path(data_dir))
    tracker = Tracker(store, config, lambda role: client.for_spec(config.endpoint(role)), jobs_at=jobs_at(client),
                      schedule=FAST_POLLS).start()
    die_on(*STEPS[step])
    # The id is known once the record exists: announce it, then let the job run into the kill.
    store_create = store.create

    def create_and_announce(**kwargs):
        record = store_create(**kwargs)
        print(record.local_id, flush=True)
        return record

    store.create = create_and_announce
    tracker.submit("basic", {"echo": step}, kind="test", user="crash@localhost", idempotency_key=f"crash-{step}")
    signal.pause()  # the tracker thread reaches the kill


if __name__ == "__main__":
    main(*sys.argv[1:4])
