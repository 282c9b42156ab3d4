"""RestV2 on httpx.MockTransport: wrapped lists, pagination, PATCH shapes, problem+json, RateLimit."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from lib.runpod import (
    AuthError,
    BadRequest,
    BadResponse,
    BillingRecord,
    Endpoint,
    NetworkVolume,
    NotFound,
    RateLimited,
    Worker,
)
from tests.support.fakes import KEY, REST_URL, recording_runpod

E = {
    "id": "img-1", "name": "console-image", "type": "QUEUE",
    "gpu": {"pools": ["ADA_24", "AMPERE_48"], "count": 1},
    "workers": {"min": 1, "max": 3, "idleTimeout": 7},
    "scaling": {"type": "REQUEST_COUNT", "requestCount": 2},
    "timeout": 600000, "flashboot": "PRIORITY_FLASHBOOT", "dataCenterIds": ["EU-RO-1"],
    "networkVolumes": ["vol-1"], "image": "runpod/worker-comfyui:5.1.0", "env": {},
    "createdAt": "2026-01-01T00:00:00Z", "requestUrls": {"run": "https://api.runpod.ai/v2/img-1/run"},
}


def test_endpoint_parsed_fully():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=E))
    ep = client.rest.endpoint("img-1")
    assert (seen[0].method, str(seen[0].url)) == ("GET", f"{REST_URL}/serverless/img-1")
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert ep == Endpoint(id="img-1", name="console-image", gpu_pools=("ADA_24", "AMPERE_48"), gpu_count=1,
                          workers_min=1, workers_max=3, idle_timeout_s=7, scaling_type="REQUEST_COUNT",
                          scaling_value=2, flashboot=True, flashboot_mode="PRIORITY_FLASHBOOT", timeout_ms=600000,
                          data_center_ids=("EU-RO-1",), network_volume_ids=("vol-1",),
                          image="runpod/worker-comfyui:5.1.0")
    assert ep.raw["requestUrls"]["run"].endswith("/run")


def test_endpoint_defaults_for_missing_fields():
    ep = Endpoint.from_json({"id": "x"}, "test")
    assert (ep.workers_min, ep.workers_max, ep.idle_timeout_s, ep.scaling_type, ep.scaling_value,
            ep.timeout_ms, ep.gpu_count, ep.gpu_pools, ep.image) == (0, 3, 5, "QUEUE_DELAY", 4, 600000, 1, (), "")
    assert Endpoint.from_json({"id": "x", "flashboot": "OFF"}, "t").flashboot is False


@pytest.mark.parametrize("patch, fragment", [
    ({"workers": {"min": "1"}}, "'min'"),
    ({"gpu": {"pools": "ADA_24"}}, "'pools'"),
    ({"flashboot": "TURBO"}, "unknown flashboot mode"),
    ({"timeout": "600000"}, "'timeout'"),
    ({"id": None}, "has no 'id'"),
])
def test_endpoint_wrong_types(patch, fragment):
    client, _, _ = recording_runpod(lambda r: httpx.Response(200, json={**E, **patch}))
    with pytest.raises(BadResponse, match=fragment):
        client.rest.endpoint("img-1")


def test_lists_are_unwrapped_and_paginated():
    pages = {
        None: {"endpoints": [E, {**E, "id": "img-2"}], "nextCursor": "c2"},
        "c2": {"endpoints": [{**E, "id": "img-3"}], "nextCursor": None},
    }
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]))
    ids = [e.id for e in client.rest.endpoints()]
    assert ids == ["img-1", "img-2", "img-3"]
    assert [str(r.url) for r in seen] == [f"{REST_URL}/serverless", f"{REST_URL}/serverless?cursor=c2"]


def test_next_link_followed_and_repeated_cursor_refused():
    def handler(request):
        if "page=2" in str(request.url):
            return httpx.Response(200, json={"networkVolumes": [{"id": "v2", "size": 20}], "next": "?page=2"})
        return httpx.Response(200, json={"networkVolumes": [
            {"id": "v1", "name": "characters", "size": 200, "dataCenter": "EU-RO-1", "type": "HIGH_PERFORMANCE"}],
            "next": "?page=2"})
    client, seen, _ = recording_runpod(handler)
    gen = client.rest.network_volumes()
    assert next(gen) == NetworkVolume(id="v1", name="characters", size_gb=200, datacenter="EU-RO-1",
                                      type="HIGH_PERFORMANCE")
    assert next(gen).id == "v2"
    with pytest.raises(BadResponse, match="same page cursor twice"):
        next(gen)
    assert str(seen[1].url) == f"{REST_URL}/network-volumes?page=2"


def test_network_volume_get():
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json={"id": "v1", "size": 50,
                                                                           "dataCenterId": "US-KS-2"}))
    vol = client.rest.network_volume("v1")
    assert str(seen[0].url) == f"{REST_URL}/network-volumes/v1"
    assert (vol.size_gb, vol.datacenter, vol.type) == (50, "US-KS-2", "STANDARD")


@pytest.mark.parametrize("kwargs, body", [
    ({"workers_min": 10, "workers_max": 10}, {"workers": {"min": 10, "max": 10}}),
    ({"idle_timeout_s": 30}, {"workers": {"idleTimeout": 30}}),
    ({"scaling_type": "QUEUE_DELAY", "scaling_value": 2.5}, {"scaling": {"type": "QUEUE_DELAY", "queueDelay": 2.5}}),
    ({"scaling_type": "request_count", "scaling_value": 3},
     {"scaling": {"type": "REQUEST_COUNT", "requestCount": 3}}),
    ({"flashboot": True}, {"flashboot": "FLASHBOOT"}),
    ({"flashboot": False}, {"flashboot": "OFF"}),
    ({"timeout_ms": 900000, "name": "n"}, {"timeout": 900000, "name": "n"}),
    ({"gpu_pools": ("ADA_24",)}, {"gpu": {"pools": ["ADA_24"]}}),
])
def test_update_endpoint_patch_shapes(kwargs, body):
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=E))
    assert client.rest.update_endpoint("img-1", **kwargs).id == "img-1"
    assert (seen[0].method, str(seen[0].url)) == ("PATCH", f"{REST_URL}/serverless/img-1")
    assert json.loads(seen[0].content) == body


@pytest.mark.parametrize("kwargs", [{}, {"scaling_value": 3}, {"scaling_type": "FAST", "scaling_value": 1}])
def test_update_endpoint_refuses_bad_arguments(kwargs):
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=E))
    with pytest.raises(ValueError):
        client.rest.update_endpoint("img-1", **kwargs)
    assert seen == []


def test_patch_retried_with_same_body():
    calls = []

    def handler(request):
        calls.append(request.content)
        return httpx.Response(502) if len(calls) == 1 else httpx.Response(200, json=E)
    client, _, _ = recording_runpod(handler)
    client.rest.update_endpoint("img-1", workers_max=5)
    assert len(calls) == 2 and calls[0] == calls[1]


def test_workers_summary():
    raw = {"workers": [{"id": "w1", "status": "RUNNING", "createdAt": "2026-03-01T10:00:00Z"},
                       {"id": "w2", "status": "IDLE"}],
           "summary": {"running": 1, "idle": 1, "initializing": 0, "throttled": 0, "unhealthy": 0, "total": 2},
           "endpointVersion": 4}
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=raw))
    s = client.rest.workers("img-1")
    assert str(seen[0].url) == f"{REST_URL}/serverless/img-1/workers"
    assert s.workers[0] == Worker(id="w1", status="RUNNING", created_at=datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert (s.running, s.idle, s.total, s.endpoint_version) == (1, 1, 2, 4)


def test_billing_serverless_query_and_records():
    raw = {"records": [{"startTime": "2026-05-01T00:00:00Z", "endTime": "2026-05-02T00:00:00Z",
                        "totalAmount": 1.5, "gpuAmount": 1.2, "cpuAmount": 0, "diskAmount": 0.2,
                        "feeAmount": 0.1, "serverlessId": "img-1"}],
           "metadata": {"recordCount": 1, "totals": {"totalAmount": 1.5}}}
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=raw))
    start = datetime(2026, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    report = client.rest.billing_serverless(start=start, end=datetime(2026, 5, 8), bucket_size="day",
                                            serverless_id="img-1")
    params = seen[0].url.params
    assert seen[0].url.path == "/v2/billing/serverless"
    assert dict(params) == {"startTime": "2026-05-01T00:00:00Z", "endTime": "2026-05-08T00:00:00Z",
                            "bucketSize": "day", "serverlessId": "img-1"}
    assert report.records == [BillingRecord(start=datetime(2026, 5, 1, tzinfo=UTC),
                                            end=datetime(2026, 5, 2, tzinfo=UTC), total=1.5, gpu=1.2,
                                            cpu=0, disk=0.2, fee=0.1, serverless_id="img-1")]
    assert report.totals == {"totalAmount": 1.5}


def test_billing_network_volumes():
    raw = {"records": [{"startTime": "2026-05-01T00:00:00Z", "endTime": "2026-05-02T00:00:00Z",
                        "totalAmount": 0.5, "standardAmount": 0.5, "highPerformanceAmount": 0,
                        "networkVolumeId": "v1"}]}
    client, seen, _ = recording_runpod(lambda r: httpx.Response(200, json=raw))
    recs = client.rest.billing_network_volumes(start=datetime(2026, 5, 1), end=datetime(2026, 5, 2),
                                               bucket_size="hour")
    assert seen[0].url.path == "/v2/billing/network-volumes" and seen[0].url.params["bucketSize"] == "hour"
    assert recs[0].standard == 0.5 and recs[0].network_volume_id == "v1"
    with pytest.raises(ValueError):
        client.rest.billing_network_volumes(start=datetime(2026, 5, 2), end=datetime(2026, 5, 1))


@pytest.mark.parametrize("status, error", [(400, BadRequest), (403, AuthError), (404, NotFound), (422, BadRequest)])
def test_problem_json_in_message(status, error):
    problem = {"title": "Forbidden" if status == 403 else "Bad", "status": status, "detail": "access denied",
               "errors": [{"field": "workers.max"}]}
    client, _, _ = recording_runpod(lambda r: httpx.Response(status, json=problem,
                                                                  headers={"content-type": "application/problem+json"}))
    with pytest.raises(error) as info:
        client.rest.endpoint("img-1")
    msg = str(info.value)
    assert msg.startswith("GET /serverless/img-1 (RunPod REST): ")
    assert f"{problem['title']}: access denied" in msg and "workers.max" in msg
    assert info.value.body == problem


def test_ratelimit_header_makes_next_call_wait():
    def handler(request):
        return httpx.Response(200, json=E, headers={"RateLimit": '"minute";r=0;t=12, "hour";r=2800;t=1812'})
    client, seen, clock = recording_runpod(handler)
    client.rest.endpoint("img-1")
    assert clock.sleeps == []
    client.rest.endpoint("img-1")
    assert clock.sleeps == [12.0]


def test_ratelimit_over_cap_raises_rate_limited_without_request():
    client, seen, clock = recording_runpod(lambda r: httpx.Response(
        200, json=E, headers={"RateLimit": '"hour";r=0;t=1800'}))
    client.rest.endpoint("img-1")
    with pytest.raises(RateLimited) as info:
        client.rest.endpoint("img-1")
    assert len(seen) == 1 and info.value.retry_after == pytest.approx(1800)


def test_ratelimit_with_quota_left_does_not_wait():
    client, _, clock = recording_runpod(lambda r: httpx.Response(200, json=E,
                                                                          headers={"RateLimit": '"minute";r=5;t=12'}))
    client.rest.endpoint("img-1")
    client.rest.endpoint("img-1")
    assert clock.sleeps == []


def test_rest_429_retry_after_honoured():
    n = []

    def handler(request):
        n.append(1)
        if len(n) == 1:
            return httpx.Response(429, json={"title": "Too Many Requests", "status": 429},
                                  headers={"Retry-After": "3"})
        return httpx.Response(200, json={"endpoints": []})
    client, _, clock = recording_runpod(handler)
    assert list(client.rest.endpoints()) == []
    assert clock.sleeps == [3.0]
