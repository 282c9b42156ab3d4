"""REST v2: endpoints, workers, network volumes, billing."""
from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

ENDPOINT_KEYS = {"id", "name", "type", "gpu", "workers", "scaling", "timeout", "flashboot",
                 "dataCenterIds", "networkVolumes", "image", "env", "createdAt", "requestUrls"}


def test_list_endpoints_matches_the_config(pod, api, basic_config):
    r = api.http.get("/rest/v2/serverless")
    assert r.status_code == 200
    assert "RateLimit" in r.headers and "RateLimit-Policy" in r.headers
    endpoints = {e["id"]: e for e in r.json()["endpoints"]}
    specs = {s.id: s for s in basic_config.endpoints.values()}
    assert set(endpoints) == set(specs)
    for endpoint_id, e in endpoints.items():
        spec = specs[endpoint_id]
        assert set(e) == ENDPOINT_KEYS
        assert spec.role in e["name"]
        assert e["type"] == "QUEUE"
        assert e["gpu"] == {"pools": list(spec.gpu_pools), "count": 1}
        assert e["workers"] == {"min": spec.workers_min, "max": spec.workers_max,
                                "idleTimeout": spec.idle_timeout_s}
        assert e["scaling"] == {"type": "QUEUE_DELAY", "queueDelay": spec.scaling_value}
        assert e["timeout"] == spec.execution_timeout_ms
        assert e["flashboot"] == ("FLASHBOOT" if spec.flashboot else "OFF")
        assert e["dataCenterIds"] == [basic_config.volume.datacenter]
        assert e["networkVolumes"] == [basic_config.volume.id]
        assert datetime.fromisoformat(e["createdAt"]).tzinfo is not None
        assert e["requestUrls"]["runSync"] == f"{pod.api_url}/{endpoint_id}/runsync"
        assert e["requestUrls"]["purgeQueue"] == f"{pod.api_url}/{endpoint_id}/purge-queue"
        assert set(e["requestUrls"]) == {"run", "runSync", "status", "stream", "cancel", "retry",
                                         "purgeQueue", "health"}


def test_dev_worker_endpoints_are_not_simulated(start_localpod, basic_config):
    import copy

    table = copy.deepcopy(dict(basic_config.raw))
    endpoints = table["endpoints"]
    del endpoints["special"]["id"]
    endpoints["special"]["url"] = "http://localhost:8000"
    pod = start_localpod(table)
    import httpx
    listed = httpx.get(f"{pod.rest_url}/serverless",
                       headers={"Authorization": "Bearer test-key"}).json()["endpoints"]
    assert "special-sim01" not in {e["id"] for e in listed}
    assert len(listed) == len(endpoints) - 1


def test_get_one_endpoint_and_404(api):
    e = api.http.get("/rest/v2/serverless/image-sim01").json()
    assert e["id"] == "image-sim01" and "image" in e["name"]
    r = api.http.get("/rest/v2/serverless/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"title": "Not Found", "status": 404,
                        "detail": "serverless endpoint nope not found"}


def test_patch_updates_and_returns_the_endpoint(basic_pod, api_for):
    api = api_for(basic_pod)
    e = api.patch({"name": "console-basic-v2", "workers": {"max": 5, "idleTimeout": 30},
                   "scaling": {"queueDelay": 2.5}, "timeout": 120000, "flashboot": "OFF",
                   "gpu": {"pools": ["AMPERE_48", "ADA_24"]}})
    assert e["name"] == "console-basic-v2"
    assert e["workers"] == {"min": 0, "max": 5, "idleTimeout": 30}
    assert e["scaling"] == {"type": "QUEUE_DELAY", "queueDelay": 2.5}
    assert e["timeout"] == 120000 and e["flashboot"] == "OFF"
    assert e["gpu"]["pools"] == ["AMPERE_48", "ADA_24"]
    assert api.http.get("/rest/v2/serverless/basic-sim01").json() == e


@pytest.mark.parametrize("body, message", [
    ({"workers": {"min": 4, "max": 2}}, "must not exceed"),
    ({"workers": {"idleTimeout": 0}}, "workers.idleTimeout"),
    ({"scaling": {"type": "REQUEST_COUNT"}}, "scaling.requestCount is required"),
    ({"scaling": {"queueDelay": 0.1}}, "at least 0.5"),
    ({"flashboot": "MAYBE"}, "flashboot must be one of"),
    ({"gpu": {"pools": ["TPU_9000"]}}, "no price for 'TPU_9000'"),
    ({"createdAt": "2020-01-01T00:00:00Z"}, "createdAt is not a writable field"),
    ({"workers": {"standby": 1}}, "workers.standby is not a writable field"),
])
def test_patch_rejects_invalid_changes(basic_pod, api_for, body, message):
    api = api_for(basic_pod)
    r = api.http.patch("/rest/v2/serverless/basic-sim01", json=body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert message in r.json()["detail"]
    assert api.http.get("/rest/v2/serverless/basic-sim01").json()["workers"]["max"] == 3


def test_workers_listing_and_summary(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 1, "max": 2}})
    listing = api.workers()
    assert set(listing) == {"workers", "summary", "endpointVersion"}
    assert listing["summary"] == {"running": 0, "idle": 0, "initializing": 1, "throttled": 0,
                                  "unhealthy": 0, "total": 1}
    worker = listing["workers"][0]
    assert set(worker) == {"id", "status", "createdAt"}
    assert worker["status"] == "INITIALIZING" and len(worker["id"]) == 14
    job_id = api.run({"sleep_ms": 500})
    api.wait(job_id, ("IN_PROGRESS",))
    assert api.workers()["summary"]["running"] == 1


def test_network_volumes(api, basic_config):
    vol = basic_config.volume
    listed = api.http.get("/rest/v2/network-volumes").json()
    assert listed == {"networkVolumes": [{"id": vol.id, "name": vol.name, "size": vol.size_gb,
                                          "dataCenter": vol.datacenter, "type": "STANDARD"}]}
    assert api.http.get(f"/rest/v2/network-volumes/{vol.id}").json()["id"] == vol.id
    assert api.http.get("/rest/v2/network-volumes/nope").status_code == 404


def test_billing_bills_worker_seconds_at_the_pool_price(basic_pod, api_for, basic_config):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 1, "max": 1}})
    api.until(lambda: api.workers()["summary"]["idle"] == 1, what="active worker ready")
    ready = time.time()
    api.wait(api.run({"sleep_ms": 300}))
    time.sleep(0.2)
    report = api.http.get("/rest/v2/billing/serverless",
                          params={"bucketSize": "hour", "serverlessId": "basic-sim01"}).json()
    billed = time.time() - ready
    assert report["metadata"]["recordCount"] == len(report["records"]) >= 1
    assert report["metadata"]["uniqueServerlessCount"] == 1
    record = report["records"][-1]
    assert set(record) == {"startTime", "endTime", "totalAmount", "gpuAmount", "cpuAmount",
                           "diskAmount", "feeAmount", "serverlessId"}
    assert record["serverlessId"] == "basic-sim01"
    gpu = sum(r["gpuAmount"] for r in report["records"])
    active_price = basic_config.prices.per_second("ADA_24", active=True)
    # one active worker, billed from ready (initializing is free) to the query, idle included
    assert 0.45 * active_price <= gpu <= (billed + 0.05) * active_price
    totals = report["metadata"]["totals"]
    assert totals["totalAmount"] == pytest.approx(
        sum(r["totalAmount"] for r in report["records"]), abs=1e-8)
    assert totals["totalAmount"] == pytest.approx(
        totals["gpuAmount"] + totals["cpuAmount"] + totals["diskAmount"] + totals["feeAmount"],
        abs=1e-8)
    assert 0 < totals["diskAmount"] < totals["gpuAmount"] / 100


def test_billing_query_defaults_buckets_and_errors(api):
    r = api.http.get("/rest/v2/billing/serverless")
    assert r.status_code == 200
    query = r.json()["metadata"]["query"]
    start = datetime.fromisoformat(query["startTime"])
    assert query["bucketSize"] == "day"
    assert start.hour == 0 and start.minute == 0                # snapped down to the bucket
    assert timedelta(days=30) <= datetime.now(UTC) - start < timedelta(days=31)
    bad = api.http.get("/rest/v2/billing/serverless", params={"bucketSize": "fortnight"})
    assert bad.status_code == 400 and "bucketSize" in bad.json()["detail"]
    bad = api.http.get("/rest/v2/billing/serverless", params={"startTime": "yesterday"})
    assert bad.status_code == 400 and "RFC 3339" in bad.json()["detail"]


def test_network_volume_billing_shape(api, basic_config):
    """Pro-rata amounts over whole hours are checked on a seeded volume in test_seed.py."""
    vol = basic_config.volume
    now = datetime.now(UTC).replace(microsecond=0)
    params = {"bucketSize": "hour", "startTime": (now - timedelta(hours=3)).isoformat(),
              "endTime": now.isoformat()}
    report = api.http.get("/rest/v2/billing/network-volumes", params=params).json()
    records = report["records"]
    assert records and all(r["networkVolumeId"] == vol.id for r in records)
    assert set(records[0]) == {"startTime", "endTime", "totalAmount", "standardAmount",
                               "highPerformanceAmount", "networkVolumeId"}
    hourly = vol.size_gb * basic_config.prices.volume_usd_per_gb_month / (30 * 86400) * 3600
    assert all(0 < r["totalAmount"] == r["standardAmount"] <= hourly + 1e-6 for r in records)
    assert math.isclose(report["metadata"]["totals"]["totalAmount"],
                        sum(r["totalAmount"] for r in records), abs_tol=1e-5)
