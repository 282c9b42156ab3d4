"""Fixtures for the simulator's own tests: a shared pod with the `basic` endpoint, and raw-httpx
helpers (`api`, `api_for`) that know the job-API and REST routes."""
from __future__ import annotations

import httpx
import pytest

from lib.localpod.server import LocalPod
from tests.support.waiting import wait_until

BASIC = "basic-sim01"
KEY = "test-key"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


class Api:
    """Raw HTTP access to one simulator, the way any RunPod client would talk to it."""

    def __init__(self, pod: LocalPod, endpoint: str = BASIC, key: str | None = KEY):
        self.pod = pod
        self.endpoint = endpoint
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=pod.url, headers=headers, timeout=30)

    def close(self) -> None:
        self.http.close()

    def post(self, op: str, body: object = None, **kw) -> httpx.Response:
        return self.http.post(f"/v2/{self.endpoint}/{op}", json=body, **kw)

    def get(self, op: str, **kw) -> httpx.Response:
        return self.http.get(f"/v2/{self.endpoint}/{op}", **kw)

    def run(self, job_input: dict, **extra) -> str:
        r = self.post("run", {"input": job_input, **extra})
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def status(self, job_id: str) -> dict:
        r = self.get(f"status/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, statuses=TERMINAL, timeout: float = 10.0) -> dict:
        def reached() -> dict | None:
            body = self.status(job_id)
            return body if body["status"] in statuses else None
        return wait_until(reached, timeout, what=f"job {job_id} to reach {statuses}")

    def wait_gone(self, job_id: str, timeout: float = 5.0) -> None:
        wait_until(lambda: self.get(f"status/{job_id}").status_code == 404, timeout,
                   what=f"job {job_id} to be gone")

    def health(self) -> dict:
        return self.get("health").json()

    def patch(self, body: dict) -> dict:
        r = self.http.patch(f"/rest/v2/serverless/{self.endpoint}", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def workers(self) -> dict:
        return self.http.get(f"/rest/v2/serverless/{self.endpoint}/workers").json()

    def faults(self, **faults) -> dict:
        r = self.http.put(f"/admin/faults/{self.endpoint}", json=faults)
        assert r.status_code == 200, r.text
        return r.json()

    def settings(self, **settings) -> dict:
        r = self.http.put("/admin/settings", json=settings)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="session")
def pod(tmp_path_factory, basic_config):
    """Shared simulator with the basic endpoint; tests must not change its settings or faults."""
    p = LocalPod(tmp_path_factory.mktemp("localpod-shared"), basic_config, api_key=KEY,
                 time_scale=0.002, seed_demo=False).start()
    yield p
    p.stop()


@pytest.fixture
def api(pod):
    a = Api(pod)
    yield a
    a.close()


@pytest.fixture
def basic_pod(start_localpod, basic_config):
    """A private simulator with the basic endpoint, for tests that change settings or faults."""
    return start_localpod(basic_config)


@pytest.fixture
def api_for():
    made: list[Api] = []

    def make(pod: LocalPod, endpoint: str = BASIC, key: str | None = KEY) -> Api:
        a = Api(pod, endpoint, key)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()
