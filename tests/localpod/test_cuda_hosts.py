"""Host placement by CUDA version: a training worker on a host whose driver is too old never
becomes ready; gpu.minCudaVersion / allowedCudaVersions keep workers off such hosts, as on RunPod."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.localpod.test_provisioning_routes import KEY, endpoint_body, make_volume, rest


@pytest.fixture
def empty(start_localpod):
    return start_localpod(empty=True)


def training_endpoint(http, **gpu) -> dict:
    volume = make_volume(http)
    body = endpoint_body(volume["id"], name="console-training", image="ostris-aitoolkit-worker:test",
                         gpu={"pools": ["AMPERE_80"], "count": 1, **gpu}, workers={"min": 0, "max": 1,
                                                                                    "idleTimeout": 5})
    r = http.post("/serverless", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def until(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def submit(pod, endpoint_id: str) -> tuple[httpx.Client, str]:
    api = httpx.Client(base_url=pod.api_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    job = api.post(f"/{endpoint_id}/run", json={"input": {"name": "x"}}).json()
    return api, job["id"]


def test_without_a_constraint_the_training_worker_never_becomes_ready(empty):
    with rest(empty) as http:
        e = training_endpoint(http)
        assert "minCudaVersion" not in e["gpu"]
        api, job_id = submit(empty, e["id"])
        summary = lambda: http.get(f"/serverless/{e['id']}/workers").json()["summary"]   # noqa: E731
        until(lambda: summary()["initializing"] == 1, "a worker to start")
        time.sleep(1.0)        # four times the simulated 120 s cold start
        assert summary()["initializing"] == 1 and summary()["idle"] == summary()["running"] == 0
        assert api.get(f"/{e['id']}/status/{job_id}").json()["status"] == "IN_QUEUE"

        # Declaring the constraint moves the endpoint to hosts that can run the image.
        patched = http.patch(f"/serverless/{e['id']}", json={"gpu": {"minCudaVersion": "13.0"}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["gpu"]["minCudaVersion"] == "13.0"
        until(lambda: api.get(f"/{e['id']}/status/{job_id}").json()["status"] != "IN_QUEUE", "the job to start")
        api.close()


def test_with_the_constraint_the_worker_starts(empty):
    with rest(empty) as http:
        e = training_endpoint(http, minCudaVersion="13.0")
        assert e["gpu"]["minCudaVersion"] == "13.0"
        api, job_id = submit(empty, e["id"])
        until(lambda: api.get(f"/{e['id']}/status/{job_id}").json()["status"] != "IN_QUEUE", "the job to start")
        api.close()


def test_a_constraint_no_host_meets_leaves_the_worker_throttled(empty):
    with rest(empty) as http:
        e = training_endpoint(http, allowedCudaVersions=["11.8"])
        assert e["gpu"]["allowedCudaVersions"] == ["11.8"]
        api, _ = submit(empty, e["id"])
        until(lambda: http.get(f"/serverless/{e['id']}/workers").json()["summary"]["throttled"] == 1,
              "a throttled worker")
        api.close()


@pytest.mark.parametrize("gpu, message", [
    ({"minCudaVersion": "thirteen"}, "gpu.minCudaVersion"),
    ({"allowedCudaVersions": "13.0"}, "gpu.allowedCudaVersions"),
])
def test_bad_cuda_fields_are_refused(empty, gpu, message):
    with rest(empty) as http:
        e = training_endpoint(http)
        r = http.patch(f"/serverless/{e['id']}", json={"gpu": gpu})
        assert r.status_code == 400 and message in r.json()["detail"]


def test_config_endpoints_carry_the_declared_constraint(fresh_localpod, console_config):
    with rest(fresh_localpod) as http:
        training = http.get(f"/serverless/{console_config.endpoint('training').id}").json()
        image = http.get(f"/serverless/{console_config.endpoint('image').id}").json()
    assert training["gpu"]["minCudaVersion"] == "13.0"
    assert "minCudaVersion" not in image["gpu"]
