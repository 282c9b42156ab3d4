"""Authentication, rate limits and injected HTTP faults."""
from __future__ import annotations

import httpx


def test_request_without_authorization_is_401(pod, api_for):
    anonymous = api_for(pod, key=None)
    r = anonymous.get("health")
    assert r.status_code == 401
    assert "Authorization: Bearer" in r.json()["error"]
    rest = anonymous.http.get("/rest/v2/serverless")
    assert rest.status_code == 401
    assert rest.headers["content-type"] == "application/problem+json"
    assert rest.json()["status"] == 401
    assert anonymous.http.get("/admin/settings").status_code == 401


def test_wrong_key_is_401_and_never_echoed(pod, api_for):
    wrong = api_for(pod, key="not-the-key")
    r = wrong.post("run", {"input": {}})
    assert r.status_code == 401
    assert "not-the-key" not in r.text and "test-key" not in r.text


def test_raw_key_without_bearer_is_accepted(pod):
    r = httpx.get(f"{pod.api_url}/basic-sim01/health", headers={"Authorization": "test-key"})
    assert r.status_code == 200


def test_without_configured_key_any_key_works_but_one_is_required(start_localpod, basic_config):
    open_pod = start_localpod(basic_config, api_key=None)
    url = f"{open_pod.api_url}/basic-sim01/health"
    assert httpx.get(url, headers={"Authorization": "Bearer anything"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "rpa_whatever"}).status_code == 200
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": ""}).status_code == 401


def test_purge_queue_rate_limit_gives_429_with_retry_after(basic_pod, api_for):
    api = api_for(basic_pod)
    assert api.post("purge-queue").status_code == 200
    assert api.post("purge-queue").status_code == 200
    r = api.post("purge-queue")              # limit: 2 per 10 s per endpoint
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 10
    assert "2 requests per 10 s" in r.json()["error"]
    # other operations and endpoints have their own windows
    assert api.get("health").status_code == 200
    assert api_for(basic_pod, endpoint="image-sim01").post("purge-queue").status_code == 200


def test_rate_limits_can_be_switched_off_for_benchmarks(basic_pod, api_for):
    api = api_for(basic_pod)
    api.settings(rate_limits=False)
    assert all(api.post("purge-queue").status_code == 200 for _ in range(4))


def test_injected_429_and_5xx(basic_pod, api_for):
    api = api_for(basic_pod)
    assert api.faults(http_429_rate=1.0)["http_429_rate"] == 1.0
    r = api.get("health")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    api.faults(http_429_rate=0.0, http_5xx_rate=1.0)
    r = api.post("run", {"input": {}})
    assert r.status_code == 503 and "http_5xx_rate" in r.json()["error"]
    # REST and admin routes are not affected
    assert api.http.get("/rest/v2/serverless").status_code == 200
    api.faults(http_5xx_rate=0.0)
    assert api.get("health").status_code == 200


def test_rest_quota_429_and_ratelimit_headers(basic_pod, api_for):
    api = api_for(basic_pod)
    api.settings(rest_requests_per_minute=3)
    first = api.http.get("/rest/v2/serverless")
    assert first.status_code == 200
    assert '"minute";q=3;w=60' in first.headers["RateLimit-Policy"]
    assert first.headers["RateLimit"].startswith('"minute";r=2;')
    responses = [api.http.get("/rest/v2/network-volumes") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    limited = responses[-1]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["title"] == "Too Many Requests"
    assert limited.headers["RateLimit"].startswith('"minute";r=0;')


def test_fault_settings_are_validated(basic_pod, api_for):
    api = api_for(basic_pod)
    r = api.http.put("/admin/faults/basic-sim01", json={"crash_rate": 2})
    assert r.status_code == 400 and "between 0 and 1" in r.json()["error"]
    r = api.http.put("/admin/faults/basic-sim01", json={"meteor_rate": 0.1})
    assert r.status_code == 400 and "unknown fault" in r.json()["error"]
    assert api.http.put("/admin/faults/nope", json={}).status_code == 404
    assert api.http.get("/admin/faults/basic-sim01").json()["crash_rate"] == 0.0
    r = api.http.put("/admin/settings", json={"time_scale": 0})
    assert r.status_code == 400
