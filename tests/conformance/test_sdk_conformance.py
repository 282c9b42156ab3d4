"""runpod's own Python SDK (1.12.0, unmodified) against localpod, as it would run against RunPod.

The SDK reads `runpod.endpoint_url_base` when an Endpoint is created, so it is pointed at the
simulator first. Its job-API traffic (reference §2.2): run -> POST /run; Job.status/output ->
GET /status; run_sync -> POST /runsync without ?wait and a read timeout = its timeout; stream ->
GET /stream every second; cancel, purge_queue, health -> one call each.
"""
from __future__ import annotations

import httpx
import pytest
import runpod

BASIC = "basic-sim01"


@pytest.fixture(scope="module")
def pod(tmp_path_factory, basic_config):
    from lib.localpod.server import LocalPod

    p = LocalPod(tmp_path_factory.mktemp("conformance"), basic_config, api_key="test-key",
                 time_scale=0.002, seed_demo=False).start()
    yield p
    p.stop()


@pytest.fixture
def sdk(pod, monkeypatch):
    monkeypatch.setattr(runpod, "api_key", "test-key")
    monkeypatch.setattr(runpod, "endpoint_url_base", pod.api_url)
    return runpod


def test_run_status_output(sdk):
    endpoint = sdk.Endpoint(BASIC)
    job = endpoint.run({"sleep_ms": 100, "echo": {"prompt": "a cat"}})
    assert job.job_id.endswith("-e1")
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    output = job.output(timeout=10)
    assert output["echo"] == {"prompt": "a cat"}
    assert job.status() == "COMPLETED"


def test_run_passes_the_policy_through(sdk):
    endpoint = sdk.Endpoint(BASIC)
    job = endpoint.run({"input": {"sleep_ms": 3000}, "policy": {"executionTimeout": 200}})
    job.output(timeout=10)
    assert job.status() == "TIMED_OUT"


def test_run_sync(sdk):
    endpoint = sdk.Endpoint(BASIC)
    assert endpoint.run_sync({"echo": 42}, timeout=30)["echo"] == 42
    # a failed job: the SDK returns the (absent) output and drops the error, as against RunPod
    assert endpoint.run_sync({"fail": "no"}, timeout=30) is None


def test_run_sync_is_held_until_the_job_is_done(sdk):
    endpoint = sdk.Endpoint(BASIC)
    # 1.5 s of work: /runsync (server default 90 s wait) answers with the result, no polling
    assert endpoint.run_sync({"sleep_ms": 1500, "echo": "slow"}, timeout=30)["echo"] == "slow"


def test_cancel(sdk):
    endpoint = sdk.Endpoint(BASIC)
    job = endpoint.run({"sleep_ms": 5000})
    answer = job.cancel()
    assert answer == {"id": job.job_id, "status": "CANCELLED"}
    assert job.status() == "CANCELLED"


def test_stream(sdk):
    endpoint = sdk.Endpoint(BASIC)
    job = endpoint.run({"stream": ["one", "two", "three"], "sleep_ms": 300})
    assert list(job.stream()) == ["one", "two", "three"]


def test_purge_queue_and_health(sdk, pod):
    headers = {"Authorization": "Bearer test-key"}
    rest = f"{pod.rest_url}/serverless/{BASIC}"
    httpx.patch(rest, json={"workers": {"max": 0}}, headers=headers).raise_for_status()
    try:
        endpoint = sdk.Endpoint(BASIC)
        endpoint.run({"echo": 1})
        endpoint.run({"echo": 2})
        health = endpoint.health()
        assert health["jobs"]["inQueue"] == 2
        assert set(health["workers"]) >= {"idle", "running", "initializing", "ready", "throttled"}
        assert endpoint.purge_queue() == {"removed": 2, "status": "completed"}
        assert endpoint.health()["jobs"]["inQueue"] == 0
    finally:
        httpx.patch(rest, json={"workers": {"max": 3}}, headers=headers).raise_for_status()


def test_wrong_key_raises_the_sdk_401_error(pod, monkeypatch):
    monkeypatch.setattr(runpod, "api_key", "wrong-key")
    monkeypatch.setattr(runpod, "endpoint_url_base", pod.api_url)
    with pytest.raises(RuntimeError, match="401 Unauthorized"):
        runpod.Endpoint(BASIC).health()


def test_unknown_job_raises_http_error(sdk):
    import requests

    job = sdk.endpoint.Job(BASIC, "00000000-0000-4000-8000-000000000000-e1",
                           sdk.Endpoint(BASIC).rp_client)
    with pytest.raises(requests.HTTPError, match="404"):
        job.status()
