"""The simulator's create routes (REST v2): endpoints, network volumes, delete, empty start, quota."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

KEY = "test-key"
ROOT = Path(__file__).resolve().parents[2]


def rest(pod) -> httpx.Client:
    return httpx.Client(base_url=pod.rest_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)


@pytest.fixture
def empty(start_localpod):
    return start_localpod(empty=True)


def endpoint_body(volume_id: str, **changes) -> dict:
    body = {"name": "console-image", "type": "QUEUE", "image": "runpod/worker-comfyui:5.8.5-base",
            "gpu": {"pools": ["ADA_24", "AMPERE_48"], "count": 1},
            "workers": {"min": 0, "max": 2, "idleTimeout": 5},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}, "timeout": 600000, "flashboot": "FLASHBOOT",
            "dataCenterIds": ["EU-RO-1"], "networkVolumes": [volume_id], "env": {"COMFY_LOG_LEVEL": "INFO"},
            "disk": 20}
    body.update(changes)
    return body


def make_volume(http, **changes) -> dict:
    r = http.post("/network-volumes", json={"name": "characters", "size": 100, "dataCenter": "EU-RO-1", **changes})
    assert r.status_code == 201, r.text
    return r.json()


def test_an_empty_simulator_has_nothing_until_it_is_created(empty):
    with rest(empty) as http:
        assert http.get("/serverless").json() == {"endpoints": []}
        assert http.get("/network-volumes").json() == {"networkVolumes": []}
        assert http.get("/serverless/image-sim01").status_code == 404
    assert not any(empty.volume_dir.iterdir())      # no demo seed either


def test_created_endpoint_answers_like_runpod_and_runs_jobs(empty):
    with rest(empty) as http:
        volume = make_volume(http)
        assert set(volume) == {"id", "name", "size", "dataCenter", "type"} and len(volume["id"]) == 10
        r = http.post("/serverless", json=endpoint_body(volume["id"]))
        assert r.status_code == 201, r.text
        e = r.json()
        assert len(e["id"]) == 14 and e["name"] == "console-image" and e["type"] == "QUEUE"
        assert e["gpu"] == {"pools": ["ADA_24", "AMPERE_48"], "count": 1}
        assert e["workers"] == {"min": 0, "max": 2, "idleTimeout": 5}
        assert (e["timeout"], e["flashboot"], e["disk"]) == (600000, "FLASHBOOT", 20)
        assert e["dataCenterIds"] == ["EU-RO-1"] and e["networkVolumes"] == [volume["id"]]
        assert e["env"] == {"COMFY_LOG_LEVEL": "INFO"}
        assert e["requestUrls"]["run"] == f"{empty.api_url}/{e['id']}/run"
        assert http.get(f"/serverless/{e['id']}").json() == e
        assert [x["id"] for x in http.get("/serverless").json()["endpoints"]] == [e["id"]]
    api = httpx.Client(base_url=empty.api_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    job = api.post(f"/{e['id']}/runsync", json={"input": {"workflow": {}}}).json()
    assert job["status"] in ("COMPLETED", "FAILED") and job["workerId"]     # a real simulated worker ran it
    api.close()


def test_v2_create_defaults_apply_when_left_out(empty):
    with rest(empty) as http:
        r = http.post("/serverless", json={"name": "console-special", "type": "QUEUE", "image": "x:1",
                                           "gpu": {"pools": ["ADA_24"]},
                                           "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}})
        e = r.json()
        assert r.status_code == 201
        assert e["workers"] == {"min": 0, "max": 3, "idleTimeout": 10}
        assert (e["timeout"], e["flashboot"], e["gpu"]["count"]) == (300000, "OFF", 1)
        assert e["networkVolumes"] == [] and "disk" not in e
        counting = http.post("/serverless", json={"name": "console-training", "type": "QUEUE", "image": "t:1",
                                                  "gpu": {"pools": ["AMPERE_80"]},
                                                  "scaling": {"type": "REQUEST_COUNT", "requestCount": 2}}).json()
        assert counting["workers"] == {"min": 0, "max": 3}        # no idleTimeout with requestCount


@pytest.mark.parametrize("changes, message", [
    ({"type": "LOAD_BALANCER"}, "queue-based endpoints only"),
    ({"image": ""}, "image is required"),
    ({"templateId": "30zmvf89kd"}, "keeps no templates"),
    ({"gpu": {"pools": ["TPU_9000"]}}, "no price for 'TPU_9000'"),
    ({"gpu": {"pools": ["ADA_24"], "count": 0}}, "gpu.count must be a whole number >= 1"),
    ({"scaling": {"type": "QUEUE_DELAY", "queueDelay": 0.1}}, "at least 0.5"),
    ({"scaling": {"type": "REQUEST_COUNT", "requestCount": 2}}, "idleTimeout does not apply"),
    ({"workers": {"min": 3, "max": 1}}, "must not exceed"),
    ({"flashboot": True}, "flashboot must be one of"),
    ({"networkVolumes": ["nope"]}, "network volume nope not found"),
    ({"env": {"A": 1}}, "env must be an object of string values"),
    ({"cloud": "SECURE"}, "cloud is not a field of a serverless endpoint"),
])
def test_invalid_creates_are_refused_with_the_field(empty, changes, message):
    with rest(empty) as http:
        volume = make_volume(http)
        r = http.post("/serverless", json=endpoint_body(volume["id"], **changes))
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        assert message in r.json()["detail"]
        assert http.get("/serverless").json() == {"endpoints": []}


def test_name_is_required_and_the_body_must_be_an_object(empty):
    with rest(empty) as http:
        body = endpoint_body("x")
        del body["name"]
        assert "name is required" in http.post("/serverless", json=body).json()["detail"]
        assert http.post("/serverless", json=[1]).json()["detail"] == "the body must be a JSON object"


@pytest.mark.parametrize("body, message", [
    ({"size": 5}, "size must be a whole number of GB from 10 to 4096"),
    ({"dataCenter": ""}, "dataCenter is required"),
    ({"type": "FAST"}, "type must be STANDARD or HIGH_PERFORMANCE"),
    ({"region": "x"}, "region is not a field of a network volume"),
])
def test_invalid_volumes_are_refused(empty, body, message):
    with rest(empty) as http:
        r = http.post("/network-volumes", json={"name": "v", "size": 50, "dataCenter": "EU-RO-1", **body})
        assert r.status_code == 400 and message in r.json()["detail"]


def test_a_volume_grows_and_never_shrinks_and_is_billed(empty):
    with rest(empty) as http:
        volume = make_volume(http, size=50)
        grown = http.patch(f"/network-volumes/{volume['id']}", json={"size": 80, "name": "faces"})
        assert grown.status_code == 200 and (grown.json()["size"], grown.json()["name"]) == (80, "faces")
        r = http.patch(f"/network-volumes/{volume['id']}", json={"size": 60})
        assert r.status_code == 400 and "cannot shrink (it has 80 GB)" in r.json()["detail"]
        assert http.patch("/network-volumes/nope", json={"size": 60}).status_code == 404
        billing = http.get("/billing/network-volumes", params={"bucketSize": "day"}).json()
        assert {rec["networkVolumeId"] for rec in billing["records"]} == {volume["id"]}


def test_delete_needs_zero_workers_then_the_endpoint_and_its_jobs_are_gone(empty):
    with rest(empty) as http:
        volume = make_volume(http)
        e = http.post("/serverless", json=endpoint_body(volume["id"])).json()
        r = http.delete(f"/serverless/{e['id']}")
        assert r.status_code == 400 and "set workers.min and workers.max to 0 first" in r.json()["detail"]
        assert http.patch(f"/serverless/{e['id']}", json={"workers": {"min": 0, "max": 0}}).status_code == 200
        assert http.delete(f"/serverless/{e['id']}").status_code == 204
        assert http.get(f"/serverless/{e['id']}").status_code == 404
        assert http.delete(f"/serverless/{e['id']}").status_code == 404


def test_created_resources_survive_a_restart(start_localpod, tmp_path):
    first = start_localpod(data_dir=tmp_path, empty=True)
    with rest(first) as http:
        volume = make_volume(http)
        made = http.post("/serverless", json=endpoint_body(volume["id"], name="console-training-a",
                                                          gpu={"pools": ["AMPERE_80"], "count": 2})).json()
    first.stop()
    again = start_localpod(data_dir=tmp_path, empty=True)
    with rest(again) as http:
        listed = http.get("/serverless").json()["endpoints"]
        assert [(e["id"], e["gpu"]["count"], e["networkVolumes"]) for e in listed] == [
            (made["id"], 2, [volume["id"]])]
        assert http.get("/network-volumes").json()["networkVolumes"][0]["id"] == volume["id"]


def test_patch_moves_placement_and_gpu_count(empty):
    with rest(empty) as http:
        volume = make_volume(http)
        other = make_volume(http, name="scratch")
        e = http.post("/serverless", json=endpoint_body(volume["id"])).json()
        r = http.patch(f"/serverless/{e['id']}", json={"networkVolumes": [other["id"]], "disk": 40,
                                                       "dataCenterIds": ["EU-RO-1", "EU-CZ-1"],
                                                       "gpu": {"count": 2}})
        assert r.status_code == 200, r.text
        changed = r.json()
        assert (changed["networkVolumes"], changed["disk"], changed["gpu"]["count"]) == ([other["id"]], 40, 2)
        assert changed["dataCenterIds"] == ["EU-RO-1", "EU-CZ-1"]


def test_the_worker_quota_refuses_creates_beyond_it(empty):
    with rest(empty) as http:
        admin = httpx.Client(base_url=empty.url, headers={"Authorization": f"Bearer {KEY}"})
        assert admin.put("/admin/settings", json={"worker_quota": 4}).json()["worker_quota"] == 4
        volume = make_volume(http)
        made = http.post("/serverless", json=endpoint_body(volume["id"], name="a-image"))
        assert made.status_code == 201
        r = http.post("/serverless", json=endpoint_body(volume["id"], name="b-image",
                                                       workers={"min": 0, "max": 3, "idleTimeout": 5}))
        assert r.status_code == 400
        assert "worker quota is 4 and its endpoints already use 2" in r.json()["detail"]
        grow = http.patch(f"/serverless/{made.json()['id']}", json={"workers": {"max": 5}})
        assert grow.status_code == 400 and "worker quota is 4" in grow.json()["detail"]
        assert http.patch(f"/serverless/{made.json()['id']}", json={"workers": {"idleTimeout": 9}}).status_code == 200
        assert admin.put("/admin/settings", json={"worker_quota": -1}).status_code == 400
        admin.put("/admin/settings", json={"worker_quota": None})
        admin.close()


def test_config_endpoints_still_report_the_config_volume(fresh_localpod, console_config):
    with rest(fresh_localpod) as http:
        e = http.get(f"/serverless/{console_config.endpoint('training').id}").json()
    assert e["networkVolumes"] == [console_config.volume.id]
    # console.toml names the secret; the simulator keeps RunPod's reference to it, never a value.
    assert e["env"] == {"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}"}


def test_the_command_line_starts_an_empty_simulator(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "lib.localpod", "--port", "0", "--data", str(tmp_path),
                             "--api-key", KEY, "--empty"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("localpod ready on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        listed = httpx.get(f"{url}/rest/v2/serverless", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert listed == {"endpoints": []}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
