"""A worker under development (`url =` endpoint, runpod's --rp_serve_api) runs each job inside
POST /status: the tracker posts a job at most once, never while it may be running, and follows
it without holding any other job."""
from __future__ import annotations

import pytest

from lib.config import ConsoleConfig
from lib.runpod import RunPod
from lib.services import jobs_at
from lib.store import JobStore
from lib.tracker import Tracker
from tests.faults.breakers import DevWorkerDouble
from tests.faults.conftest import FAST_POLLS, KEY, ROOT, config_text
from tests.faults.steps import USER, wait_until


@pytest.fixture
def dev_worker():
    double = DevWorkerDouble()
    yield double
    double.close()


@pytest.fixture
def rig(dev_worker, pod, tmp_path):
    config = ConsoleConfig.parse(config_text() + f'\n[endpoints.dev]\nurl = "{dev_worker.url}"\n',
                                 path=ROOT / "console.toml")
    client = RunPod(KEY, api_url=pod.api_url, rest_url=pod.rest_url)
    store = JobStore(tmp_path / "console")

    def make() -> Tracker:
        return Tracker(store, config, lambda role: client.for_spec(config.endpoint(role)), jobs_at=jobs_at(client),
                       schedule=FAST_POLLS)

    yield client, store, make
    client.close()
    store.close()


def test_a_running_dev_job_blocks_no_other_job_and_runs_once(dev_worker, rig, admin):
    client, store, make = rig
    tracker = make().start()
    try:
        slow = tracker.submit("dev", {"sleep_s": 2.0, "echo": "dev"}, kind="test", user=USER, idempotency_key="dev")
        wait_until(lambda: dev_worker.runs, what="the dev worker to start the job")
        others = [tracker.submit("basic", {"sleep_ms": 20, "echo": f"o{i}"}, kind="test", user=USER,
                                 idempotency_key=f"o{i}").local_id for i in range(3)]
        records = tracker.wait_for(others, timeout_s=1.8)
        assert [r.status for r in records] == ["COMPLETED"] * 3, "tracked while the dev worker was busy"
        assert store.get(slow.local_id).status == "IN_PROGRESS"
        final, = tracker.wait_for([slow.local_id], timeout_s=10)
        assert final.status == "COMPLETED" and final.output == {"echo": "dev"}
        assert dev_worker.runs == [slow.runpod_id], "posted once"
    finally:
        tracker.stop()


def test_a_dev_job_whose_answer_was_lost_is_never_posted_again(dev_worker, rig):
    client, store, make = rig
    client.dev_worker(dev_worker.url).run_timeout_s = 0.3  # the client stops waiting before the handler ends
    tracker = make().start()
    try:
        record = tracker.submit("dev", {"sleep_s": 1.0}, kind="test", user=USER, idempotency_key="lost")
        final, = tracker.wait_for([record.local_id], timeout_s=10)
        assert final.status == "UNKNOWN" and "never re-posts" in final.error
        wait_until(lambda: record.runpod_id not in dev_worker.jobs, what="the handler to finish")
        assert dev_worker.runs == [record.runpod_id], "one trainer, not two"
    finally:
        tracker.stop()


def test_a_dev_job_running_when_the_console_restarted_is_not_posted_again(dev_worker, rig):
    client, store, make = rig
    first = make().start()
    record = first.submit("dev", {"sleep_s": 1.0}, kind="test", user=USER, idempotency_key="restart")
    wait_until(lambda: dev_worker.runs, what="the dev worker to start the job")
    first.stop()  # the console stops while the handler runs

    second = make().start()
    try:
        final, = second.wait_for([record.local_id], timeout_s=10)
        assert final.status == "UNKNOWN" and "console restart" in final.error
        assert dev_worker.runs == [record.runpod_id]
    finally:
        second.stop()
