"""Our RunPod client against the local simulator.

Two simulators are used:
* the shared `localpod` fixture (repo console.toml, api_key "test-key"), read-only: REST reads,
  auth, and jobs on the real roles' simulated workers;
* a module-private one with `basic_config`'s endpoint basic-sim01, whose jobs run localpod's
  configurable `basic` handler ({"sleep_ms", "echo", "fail", "raise", "progress_steps", "stream"});
  tests that change its endpoint, faults or settings restore them.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from lib.localpod.server import LocalPod
from lib.runpod import (
    AuthError,
    Endpoint,
    Health,
    JobStatus,
    JobWaitTimeout,
    NetworkVolume,
    NotFound,
    Policy,
    PurgeResult,
    RunPod,
    WorkersSummary,
)
from tests.support.waiting import wait_until

BASIC = "basic-sim01"
ENDPOINT_IDS = {"image-sim01", "training-sim01", "special-sim01"}
KEY = "test-key"


@pytest.fixture(scope="module")
def basic_pod(tmp_path_factory, basic_config):
    pod = LocalPod(tmp_path_factory.mktemp("conformance"), basic_config, api_key=KEY, time_scale=0.002,
                   seed_demo=False).start()
    yield pod
    pod.stop()


@pytest.fixture
def client(basic_pod):
    with RunPod(KEY, api_url=basic_pod.api_url, rest_url=basic_pod.rest_url) as c:
        yield c


@pytest.fixture
def shared(localpod):
    with RunPod(KEY, api_url=localpod.api_url, rest_url=localpod.rest_url) as c:
        yield c


@pytest.fixture
def admin(basic_pod):
    with httpx.Client(base_url=basic_pod.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


@pytest.fixture
def faults(admin):
    """Set faults on an endpoint for one test; always cleared afterwards."""
    touched = []

    def set_faults(endpoint_id: str, **values):
        touched.append(endpoint_id)
        admin.put(f"/admin/faults/{endpoint_id}", json=values).raise_for_status()
    yield set_faults
    for endpoint_id in touched:
        admin.put(f"/admin/faults/{endpoint_id}", json={"failure_rate": 0, "crash_rate": 0,
                                                        "extra_cold_start_s": 0, "http_429_rate": 0,
                                                        "http_5xx_rate": 0}).raise_for_status()


@pytest.fixture
def settings(admin):
    """Change simulator settings for one test; the previous values are restored afterwards."""
    before = admin.get("/admin/settings").json()

    def change(**values):
        admin.put("/admin/settings", json=values).raise_for_status()
    yield change
    admin.put("/admin/settings", json={"run_retention_s": before["run_retention_s"],
                                       "runsync_retention_s": before["runsync_retention_s"]}).raise_for_status()


@pytest.fixture
def one_worker(client):
    """The basic endpoint limited to one worker (so later jobs queue); restored afterwards."""
    before = client.rest.endpoint(BASIC)
    client.rest.update_endpoint(BASIC, workers_min=0, workers_max=1)
    yield client.endpoint(BASIC)
    client.rest.update_endpoint(BASIC, workers_min=before.workers_min, workers_max=before.workers_max)


# ---------------------------------------------------------------------------- jobs


def test_run_status_wait(client):
    jobs = client.endpoint(BASIC)
    job = jobs.run({"echo": {"n": 5}, "sleep_ms": 150})
    assert job.status in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS) and job.id
    assert jobs.status(job.id).id == job.id
    done = jobs.wait(job.id, timeout_s=20)
    assert done.status is JobStatus.COMPLETED
    assert done.output["echo"] == {"n": 5}
    assert done.worker_id and done.output["worker_id"] == done.worker_id
    assert done.execution_time_ms >= 150 and done.delay_time_ms >= 0


def test_progress_updates_seen_while_waiting(client):
    jobs = client.endpoint(BASIC)
    job = jobs.run({"sleep_ms": 600, "progress_steps": 3})
    updates = []
    done = jobs.wait(job.id, timeout_s=20, on_update=updates.append)
    assert done.status is JobStatus.COMPLETED
    progress = [u.output for u in updates if u.status is JobStatus.IN_PROGRESS and u.output]
    assert progress and all(set(p) == {"progress"} for p in progress)


@pytest.mark.parametrize("spec, fragment", [({"fail": "bad input"}, "bad input"),
                                            ({"raise": "kaboom"}, "kaboom")])
def test_failed_jobs_carry_error(client, spec, fragment):
    done = client.endpoint(BASIC).run_and_wait(spec, timeout_s=20)
    assert done.status is JobStatus.FAILED and fragment in done.error


def test_runsync_completes_in_one_request(client):
    done = client.endpoint(BASIC).runsync({"echo": "hi"}, wait_ms=20_000)
    assert done.status is JobStatus.COMPLETED and done.output["echo"] == "hi"
    assert done.id.startswith("sync-")


def test_runsync_short_wait_returns_unfinished_job(client):
    jobs = client.endpoint(BASIC)
    job = jobs.runsync({"sleep_ms": 2500, "echo": 1}, wait_ms=1000)
    assert job.status in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)
    done = jobs.wait(job.id, timeout_s=20)
    assert done.status is JobStatus.COMPLETED and done.output["echo"] == 1


def test_run_and_wait_deadline_then_keep_tracking(client):
    jobs = client.endpoint(BASIC)
    started = time.monotonic()
    with pytest.raises(JobWaitTimeout) as info:
        jobs.run_and_wait({"sleep_ms": 2500, "echo": "late"}, timeout_s=1.0)
    assert time.monotonic() - started < 2.0
    unfinished = info.value.job
    assert unfinished.status in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)
    assert jobs.wait(unfinished.id, timeout_s=20).output["echo"] == "late"


def test_timed_out_by_policy(client):
    done = client.endpoint(BASIC).run_and_wait({"sleep_ms": 3000}, timeout_s=20,
                                                policy=Policy(execution_timeout_ms=300))
    assert done.status is JobStatus.TIMED_OUT


def test_cancel_queued_and_running(one_worker):
    jobs = one_worker
    running = jobs.run({"sleep_ms": 5000})
    wait_until(lambda: jobs.status(running.id).status is JobStatus.IN_PROGRESS)
    queued = jobs.run({"sleep_ms": 10})
    assert jobs.status(queued.id).status is JobStatus.IN_QUEUE
    assert jobs.cancel(queued.id).status is JobStatus.CANCELLED
    assert jobs.cancel(running.id).status is JobStatus.CANCELLED
    assert jobs.status(running.id).status is JobStatus.CANCELLED
    assert jobs.wait(queued.id, timeout_s=5).status is JobStatus.CANCELLED


def test_purge_queue(one_worker):
    jobs = one_worker
    running = jobs.run({"sleep_ms": 5000})
    wait_until(lambda: jobs.status(running.id).status is JobStatus.IN_PROGRESS)
    queued = [jobs.run({"sleep_ms": 10}) for _ in range(2)]
    result = jobs.purge_queue()
    assert result == PurgeResult(removed=2, status="completed")
    assert jobs.status(running.id).status is JobStatus.IN_PROGRESS  # running jobs are untouched
    assert all(jobs.status(j.id).is_terminal for j in queued)
    jobs.cancel(running.id)


def test_retry_failed_job(client):
    jobs = client.endpoint(BASIC)
    retried_before = jobs.health().jobs.retried
    failed = jobs.run_and_wait({"fail": "once"}, timeout_s=20)
    assert failed.status is JobStatus.FAILED
    again = jobs.retry(failed.id)
    assert again.id == failed.id and again.status in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)
    assert jobs.wait(failed.id, timeout_s=20).status is JobStatus.FAILED
    assert jobs.health().jobs.retried == retried_before + 1


def test_ttl_expiry_is_not_found(client):
    jobs = client.endpoint(BASIC)
    job = jobs.run({"sleep_ms": 3000}, policy=Policy(ttl_ms=400))
    time.sleep(0.8)
    with pytest.raises(NotFound, match="the job is gone"):
        jobs.status(job.id)


def test_result_retention_expiry_is_not_found(client, settings):
    settings(run_retention_s=0.3, runsync_retention_s=0.3)
    jobs = client.endpoint(BASIC)
    queued = jobs.wait(jobs.run({"echo": 1}).id, timeout_s=20)   # /run: kept run_retention_s
    synced = jobs.run_and_wait({"echo": 2}, timeout_s=20)          # /runsync: kept runsync_retention_s
    assert queued.is_terminal and synced.is_terminal and synced.id.startswith("sync-")
    wait_until(lambda: _gone(jobs, queued.id) and _gone(jobs, synced.id), timeout_s=5)


def test_status_ttl_shortens_retention(client):
    jobs = client.endpoint(BASIC)
    job = jobs.run({"echo": 2})
    jobs.wait(job.id, timeout_s=20)
    assert jobs.status(job.id, ttl_ms=200).status is JobStatus.COMPLETED
    wait_until(lambda: _gone(jobs, job.id), timeout_s=5)


def _gone(jobs, job_id) -> bool:
    try:
        jobs.status(job_id)
    except NotFound:
        return True
    return False


def test_health(client):
    jobs = client.endpoint(BASIC)
    before = jobs.health()
    job = jobs.run({"echo": 0, "sleep_ms": 1500})
    # While the job runs a worker exists (read then, not after: the test endpoint's idle timeout is
    # milliseconds, so the worker may be gone by the time the job is seen completed).
    busy = wait_until(lambda: (h := jobs.health()).workers.total >= 1 and h, timeout_s=20, what="a worker")
    assert isinstance(busy, Health)
    wait_until(lambda: jobs.status(job.id).status.is_final, timeout_s=20, what="the job to finish")
    assert jobs.health().jobs.completed == before.jobs.completed + 1


def test_stream(client):
    jobs = client.endpoint(BASIC)
    job = jobs.run({"stream": ["a", {"b": 1}, "c"], "sleep_ms": 300})
    assert list(jobs.iter_stream(job.id, timeout_s=20)) == ["a", {"b": 1}, "c"]
    assert jobs.status(job.id).output == ["a", {"b": 1}, "c"]


def test_stream_ends_on_cancel(client):
    jobs = client.endpoint(BASIC)
    job = jobs.run({"stream": ["x"] * 50, "sleep_ms": 10_000})
    wait_until(lambda: jobs.status(job.id).status is JobStatus.IN_PROGRESS)
    chunks = jobs.iter_stream(job.id, timeout_s=20)
    jobs.cancel(job.id)
    started = time.monotonic()
    assert len(list(chunks)) <= 50
    assert time.monotonic() - started < 10


def test_wrong_key_is_auth_error(localpod):
    with RunPod("wrong-key", api_url=localpod.api_url, rest_url=localpod.rest_url) as bad:
        with pytest.raises(AuthError) as info:
            bad.endpoint("image-sim01").run({"workflow": {}})
        assert info.value.status == 401 and "wrong-key" not in str(info.value)
        with pytest.raises(AuthError):
            bad.endpoint("image-sim01").health()
        with pytest.raises(AuthError):
            bad.rest.endpoint("image-sim01")


@pytest.mark.parametrize("fault", ["http_429_rate", "http_5xx_rate"])
def test_injected_errors_are_retried(basic_pod, faults, fault):
    sent = []
    with RunPod(KEY, api_url=basic_pod.api_url, rest_url=basic_pod.rest_url, max_retries=12,
                sleep=lambda s: None, event_hooks={"request": [sent.append]}) as c:
        jobs = c.endpoint(BASIC)
        job = jobs.run({"echo": "retried"})  # before the faults: a submission is not retried on 5xx
        faults(BASIC, **{fault: 0.4})
        statuses = [jobs.status(job.id) for _ in range(15)]
        health = jobs.health()
    assert all(s.id == job.id for s in statuses) and isinstance(health, Health)
    assert len(sent) > 17  # some reads were refused and retried


# ---------------------------------------------------------------------------- REST


def test_rest_list_get_and_volume(shared, console_config):
    endpoints = {e.id: e for e in shared.rest.endpoints()}
    assert set(endpoints) == ENDPOINT_IDS
    for spec in console_config.endpoints.values():
        live = shared.rest.endpoint(spec.id)
        assert isinstance(live, Endpoint) and live == endpoints[spec.id]
        assert (live.name, live.gpu_pools, live.workers_max, live.flashboot, live.timeout_ms) == (
            spec.name, spec.gpu_pools, spec.workers_max, spec.flashboot, spec.timeout_ms)
    volumes = list(shared.rest.network_volumes())
    assert [v.id for v in volumes] == [console_config.volume.id] and isinstance(volumes[0], NetworkVolume)
    assert volumes[0].datacenter == console_config.volume.datacenter
    assert shared.rest.network_volume(volumes[0].id) == volumes[0]
    with pytest.raises(NotFound):
        shared.rest.endpoint("no-such-endpoint")
    with pytest.raises(NotFound):
        shared.rest.network_volume("no-such-volume")


def test_real_role_worker_reports_failure(shared):
    """The simulated worker-comfyui refuses an input without a workflow, as the real one does."""
    jobs = shared.endpoint("image-sim01")
    done = jobs.run_and_wait({"prompt": "no workflow"}, timeout_s=30)
    assert done.status is JobStatus.FAILED and "workflow" in done.error
    assert isinstance(jobs.health(), Health)
    with pytest.raises(NotFound, match="the job is gone"):
        jobs.status("no-such-job")


def test_rest_patch(client):
    before = client.rest.endpoint(BASIC)
    try:
        after = client.rest.update_endpoint(BASIC, idle_timeout_s=before.idle_timeout_s + 7,
                                            scaling_type="REQUEST_COUNT", scaling_value=3,
                                            flashboot=not before.flashboot)
        assert after.idle_timeout_s == before.idle_timeout_s + 7
        assert (after.scaling_type, after.scaling_value) == ("REQUEST_COUNT", 3)
        assert after.flashboot is (not before.flashboot)
        assert client.rest.endpoint(BASIC) == after
    finally:
        client.rest.update_endpoint(BASIC, idle_timeout_s=before.idle_timeout_s,
                                    scaling_type=before.scaling_type, scaling_value=before.scaling_value,
                                    flashboot=before.flashboot)


def test_rest_workers(client):
    client.endpoint(BASIC).run_and_wait({"echo": 1}, timeout_s=20)
    summary = client.rest.workers(BASIC)
    assert isinstance(summary, WorkersSummary)
    assert summary.total == len(summary.workers)
    assert summary.running + summary.idle + summary.initializing + summary.throttled + summary.unhealthy \
        == summary.total


def test_rest_billing(client):
    client.endpoint(BASIC).run_and_wait({"sleep_ms": 50}, timeout_s=20)
    end = datetime.now(UTC) + timedelta(hours=1)
    report = client.rest.billing_serverless(start=end - timedelta(days=2), end=end, bucket_size="hour")
    assert all(r.total >= 0 for r in report.records)
    filtered = client.rest.billing_serverless(start=end - timedelta(days=2), end=end, serverless_id=BASIC)
    assert all(r.serverless_id in (None, BASIC) for r in filtered.records)
    volumes = client.rest.billing_network_volumes(start=end - timedelta(days=2), end=end)
    assert all(v.total >= 0 for v in volumes)
