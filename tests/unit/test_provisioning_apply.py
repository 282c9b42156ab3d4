"""Apply against the simulator (an empty account), a failure halfway, PATCHes, deletes, and the REST v2
request bodies checked against the reference's field names."""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from lib.config import ConsoleConfig
from lib.provisioning.apply import DONE, FAILED, SKIPPED, apply_plan, delete_unmanaged
from lib.provisioning.bind import write_id
from lib.provisioning.declaration import Declaration
from lib.provisioning.plan import LiveState, make_plan
from lib.runpod import RunPod

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"


class Account:
    """An empty simulated RunPod account, a console.toml to provision it from, and the audit entries."""

    def __init__(self, pod, path: Path):
        self.pod, self.path = pod, path
        self.client = RunPod(KEY, api_url=pod.api_url, rest_url=pod.rest_url, retry_cap_s=0.5)
        self.audit: list[tuple[str, dict]] = []

    def declaration(self) -> Declaration:
        return Declaration.from_config(ConsoleConfig.load(self.path))

    def plan(self):
        return make_plan(self.declaration(), LiveState.fetch(self.client.rest))

    def bind(self, kind, role, new_id):
        write_id(self.path, ("volume",) if kind == "volume" else ("endpoints", role), new_id)

    def apply(self):
        return apply_plan(self.plan(), self.declaration(), self.client.rest, bind=self.bind,
                          record=lambda target, detail: self.audit.append((target, detail)))

    def edit(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text
        self.path.write_text(text.replace(old, new, 1))

    def admin(self, **settings) -> None:
        httpx.put(f"{self.pod.url}/admin/settings", json=settings,
                  headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()


@pytest.fixture
def account(start_localpod, tmp_path, console_config):
    path = tmp_path / "console.toml"
    path.write_text((ROOT / "console.toml").read_text())
    acc = Account(start_localpod(empty=True), path)
    yield acc
    acc.client.close()


def test_an_empty_account_is_provisioned_in_one_apply(account):
    result = account.apply()
    assert result.ok and [s.status for s in result.steps] == [DONE] * 4
    assert result.steps[0].title == "Create network volume characters: 200 GB in EU-RO-1"
    config = ConsoleConfig.load(account.path)
    volume = account.client.rest.network_volume(config.volume.id)
    assert (volume.name, volume.size_gb, volume.datacenter) == ("characters", 200, "EU-RO-1")
    for spec in config.endpoints.values():
        live = account.client.rest.endpoint(spec.id)
        assert live.name == spec.name and live.network_volume_ids == (volume.id,)
        assert live.workers_max == spec.workers_max and live.timeout_ms == spec.timeout_ms
    training = account.client.rest.endpoint(config.endpoint("training").id)
    assert training.env == {"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}"} and training.disk_gb == 50
    assert not account.plan().has_work
    assert [detail.get("created") for _, detail in account.audit] == [
        "characters", "console-image", "console-training", "console-special"]
    # The created endpoint is a real simulated one: it queues and runs jobs.
    jobs = account.client.endpoint(config.endpoint("special").id)
    job = jobs.run({"workflow": {}})
    assert jobs.wait(job.id, timeout_s=20).is_terminal


def test_a_failure_halfway_stops_there_and_says_what_was_done(account):
    account.admin(worker_quota=4)        # room for the image endpoint (3), not for training's 2 more
    result = account.apply()
    assert [s.status for s in result.steps] == [DONE, DONE, FAILED, SKIPPED]
    assert not result.ok and result.failed is result.steps[2]
    assert "worker quota is 4" in result.failed.detail and "HTTP 400" in result.failed.detail
    assert result.steps[3].detail == "not run: an earlier step failed"
    config = ConsoleConfig.load(account.path)
    assert config.endpoint("training").id == "training-sim01" and config.endpoint("special").id == "special-sim01"
    assert account.client.rest.endpoint(config.endpoint("image").id).name == "console-image"
    assert len(account.audit) == 2
    plan = account.plan()
    assert [r.action for r in plan.resources] == ["unchanged", "unchanged", "create", "create"]
    account.admin(worker_quota=None)
    assert account.apply().ok and not account.plan().has_work
    assert len(list(account.client.rest.endpoints())) == 3       # nothing was created twice


def test_a_blocked_volume_is_left_alone_but_still_mounted(account):
    bigger = account.client.rest.create_network_volume(name="characters", size_gb=300, datacenter="EU-RO-1")
    result = account.apply()
    assert result.ok and result.message == "Applied; 1 blocked resource(s) left as they are."
    assert result.steps[0].status == SKIPPED and "never shrinks — set [volume] size_gb = 300" in result.steps[0].detail
    config = ConsoleConfig.load(account.path)
    assert config.volume.id == "vol-characters"          # not adopted while it is blocked
    assert account.client.rest.endpoint(config.endpoint("image").id).network_volume_ids == (bigger.id,)
    assert account.client.rest.network_volume(bigger.id).size_gb == 300


def test_drift_is_patched_field_by_field(account):
    account.apply()
    config = ConsoleConfig.load(account.path)
    image_id = config.endpoint("image").id
    account.client.rest.update_endpoint(image_id, idle_timeout_s=60, env={"LEFT": "by hand"})
    account.edit("workers_max = 3", "workers_max = 5")
    account.edit('image = "runpod/worker-comfyui:5.8.5-base"\ngpu_count = 1\ncontainer_disk_gb = 20',
                 'image = "runpod/worker-comfyui:5.8.5-base"\ngpu_count = 1\ncontainer_disk_gb = 30\n'
                 'env = { COMFY_LOG_LEVEL = "INFO" }')
    plan = account.plan()
    assert [(r["setting"], r["live"], r["console.toml"]) for r in plan.rows()] == [
        ("Max workers", "3", "5"), ("Idle timeout (s)", "60", "5"),
        ("Environment", "LEFT=by hand", "COMFY_LOG_LEVEL=INFO"), ("Container disk (GB)", "20", "30")]
    result = account.apply()
    assert result.ok and result.steps[0].title.startswith("Change endpoint console-image (image): Max workers 3 → 5")
    live = account.client.rest.endpoint(image_id)
    assert (live.workers_max, live.idle_timeout_s, live.env, live.disk_gb) == (5, 5, {"COMFY_LOG_LEVEL": "INFO"}, 30)
    assert not account.plan().has_work
    assert account.audit[-1][1]["fields"]["Max workers"] == {"from": "3", "to": "5"}


def test_a_cuda_constraint_changed_by_hand_is_drift_and_apply_restores_it(account):
    account.apply()
    training_id = ConsoleConfig.load(account.path).endpoint("training").id
    account.client.rest.update_endpoint(training_id, min_cuda_version="12.8")
    plan = account.plan()
    assert [(r["setting"], r["live"], r["console.toml"]) for r in plan.rows()] == [
        ("Min CUDA version (host driver)", "12.8", "13.0")]
    assert account.apply().ok
    live = account.client.rest.endpoint(training_id)
    assert live.min_cuda_version == "13.0" and live.gpu_pools == ("AMPERE_80", "ADA_48_PRO")
    assert not account.plan().has_work


def test_patch_of_a_cuda_constraint_carries_the_gpu_pools():
    from lib.ops import drift

    spec = ConsoleConfig.load(ROOT / "console.toml").endpoint("training")

    class Live:
        id, workers_min, workers_max, idle_timeout_s = "t1", 0, 2, 5
        scaling_type, scaling_value, flashboot, timeout_ms = "QUEUE_DELAY", 4, False, 14400000
        gpu_pools, min_cuda_version, allowed_cuda_versions = ("AMPERE_80", "ADA_48_PRO"), None, ()

    report = drift.compare(spec, Live())
    assert [i.field for i in report.items] == ["min_cuda_version"]
    assert report.fix == {"min_cuda_version": "13.0", "gpu_pools": ["AMPERE_80", "ADA_48_PRO"]}
    unmanaged = drift.compare(ConsoleConfig.load(ROOT / "console.toml").endpoint("image"), Live())
    assert "min_cuda_version" not in {r.field for r in unmanaged.rows}


def test_an_endpoint_made_by_hand_is_adopted_by_name(account):
    made = account.client.rest.create_endpoint(name="console-special", image="runpod/worker-comfyui:5.8.5-base",
                                               gpu_pools=["ADA_24"], workers_max=2)
    plan = account.plan()
    special = next(r for r in plan.resources if r.role == "special")
    assert special.live_id == made.id and special.action == "change"      # no volume mounted yet, etc.
    result = account.apply()
    assert result.ok
    assert ConsoleConfig.load(account.path).endpoint("special").id == made.id
    assert len(list(account.client.rest.endpoints())) == 3


def test_delete_needs_the_typed_name_and_never_touches_declared_endpoints(account):
    account.apply()
    extra = account.client.rest.create_endpoint(name="old-experiment", image="x:1", gpu_pools=["ADA_24"],
                                                workers_min=1, workers_max=2)
    declared = {s.id for s in ConsoleConfig.load(account.path).endpoints.values()}
    records = []
    with pytest.raises(ValueError, match="type the endpoint's name, old-experiment, exactly"):
        delete_unmanaged(extra, "old", declared, account.client.rest, record=lambda *a: records.append(a))
    image = account.client.rest.endpoint(next(iter(declared)))
    with pytest.raises(ValueError, match="is declared in console.toml"):
        delete_unmanaged(image, image.name, declared, account.client.rest, record=lambda *a: records.append(a))
    assert records == [] and account.client.rest.endpoint(extra.id).workers_min == 1
    assert delete_unmanaged(extra, " old-experiment ", declared, account.client.rest,
                            record=lambda *a: records.append(a)) == f"deleted old-experiment ({extra.id})"
    assert records == [(f"endpoint:{extra.id}", {"deleted": "old-experiment"})]
    assert extra.id not in {e.id for e in account.client.rest.endpoints()}


# --------------------------------------------------------------------------- REST v2 bodies

# Reference runpod-api.md §3.2 (CreateEndpointRequest with container settings inline, network volume).
ENDPOINT_FIELDS = {"name", "type", "scaling", "image", "templateId", "gpu", "cpu", "workers", "timeout", "flashboot",
                   "dataCenterIds", "networkVolumes", "args", "disk", "env", "ports", "registry"}
GPU_FIELDS = {"pools", "excludedTypes", "count", "allowedCudaVersions", "minCudaVersion"}
WORKER_FIELDS = {"min", "max", "idleTimeout"}
VOLUME_FIELDS = {"name", "size", "dataCenter", "type"}


class FakeRunPod:
    """REST v2 over httpx.MockTransport: records every request, answers like an empty account."""

    def __init__(self, fail_create: int | None = None):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.fail_create = fail_create
        self.counter = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path.removeprefix("/v2")
        self.requests.append((request.method, path, body))
        if request.method == "GET":
            key = "endpoints" if path == "/serverless" else "networkVolumes"
            return httpx.Response(200, json={key: []})
        self.counter += 1
        if path == "/network-volumes":
            return httpx.Response(201, json={"id": "agv6w2qcg7", **body})
        if self.counter == self.fail_create:
            return httpx.Response(500, json={"title": "Internal Server Error", "status": 500, "detail": "boom"})
        return httpx.Response(201, json={"id": f"ep{self.counter:012d}", **body})


def fake_account(tmp_path, fake: FakeRunPod):
    path = tmp_path / "console.toml"
    text = (ROOT / "console.toml").read_text()
    path.write_text(re.sub(r"(?m)^scaling_type = \"QUEUE_DELAY\"\nscaling_value = 4\nflashboot = false",
                           'scaling_type = "REQUEST_COUNT"\nscaling_value = 2\nflashboot = false', text))
    client = RunPod("rpa_fake", rest_url="https://api.runpod.io/v2", transport=httpx.MockTransport(fake),
                    sleep=lambda s: None)
    decl = Declaration.from_config(ConsoleConfig.load(path))
    plan = make_plan(decl, LiveState.fetch(client.rest))
    result = apply_plan(plan, decl, client.rest, bind=lambda *a: None, record=lambda *a: None)
    return decl, result


def test_request_bodies_use_the_reference_field_names(tmp_path):
    fake = FakeRunPod()
    decl, result = fake_account(tmp_path, fake)
    assert result.ok
    posts = [(path, body) for method, path, body in fake.requests if method == "POST"]
    assert [p for p, _ in posts] == ["/network-volumes", "/serverless", "/serverless", "/serverless"]
    assert posts[0][1] == {"name": "characters", "size": 200, "dataCenter": "EU-RO-1"}
    assert set(posts[0][1]) <= VOLUME_FIELDS
    for (_, body), d in zip(posts[1:], decl.endpoints, strict=False):
        assert set(body) <= ENDPOINT_FIELDS and {"name", "type", "scaling", "image"} <= set(body)
        assert set(body["gpu"]) <= GPU_FIELDS and set(body["workers"]) <= WORKER_FIELDS
        assert body["type"] == "QUEUE" and body["networkVolumes"] == ["agv6w2qcg7"]
        cuda = {"minCudaVersion": d.spec.min_cuda_version} if d.spec.min_cuda_version else {}
        assert body["gpu"] == {"pools": list(d.spec.gpu_pools), "count": 1, **cuda}
        assert body["flashboot"] == ("FLASHBOOT" if d.spec.flashboot else "OFF")
        assert body["timeout"] == d.spec.timeout_ms and body["dataCenterIds"] == ["EU-RO-1"]
    image, training, _ = (body for _, body in posts[1:])
    assert image["scaling"] == {"type": "QUEUE_DELAY", "queueDelay": 4}
    assert image["workers"] == {"min": 0, "max": 3, "idleTimeout": 5} and image["disk"] == 20
    # requestCount scaling: an integer, and no idleTimeout (v2 rejects it there).
    assert training["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 2}
    assert training["workers"] == {"min": 0, "max": 2}
    assert training["env"] == {"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}"}
    # AI Toolkit's image needs a CUDA 13.0 driver: the training endpoint keeps off older hosts.
    assert training["gpu"]["minCudaVersion"] == "13.0" and "minCudaVersion" not in image["gpu"]


def test_patch_and_delete_bodies():
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        if request.method == "DELETE":
            return httpx.Response(204)
        kind = {"id": "v1", "size": 300} if "network-volumes" in request.url.path else {"id": "e1"}
        return httpx.Response(200, json=kind)

    client = RunPod("rpa_fake", rest_url="https://api.runpod.io/v2", transport=httpx.MockTransport(answer))
    client.rest.update_endpoint("e1", gpu_count=2, image="i:2", env={"A": "b"}, data_center_ids=["EU-RO-1"],
                                network_volume_ids=["v1"], disk_gb=30, workers_max=4)
    client.rest.update_endpoint("e1", min_cuda_version="13.0", gpu_pools=["AMPERE_80"])
    client.rest.update_network_volume("v1", size_gb=300)
    client.rest.delete_endpoint("e1")
    assert sent == [
        ("PATCH", "/v2/serverless/e1", {"workers": {"max": 4}, "gpu": {"count": 2}, "image": "i:2",
                                        "env": {"A": "b"}, "dataCenterIds": ["EU-RO-1"], "networkVolumes": ["v1"],
                                        "disk": 30}),
        ("PATCH", "/v2/serverless/e1", {"gpu": {"pools": ["AMPERE_80"], "minCudaVersion": "13.0"}}),
        ("PATCH", "/v2/network-volumes/v1", {"size": 300}),
        ("DELETE", "/v2/serverless/e1", None)]


def test_an_uncertain_create_is_not_retried_and_says_to_plan_again(tmp_path):
    fake = FakeRunPod(fail_create=3)
    _, result = fake_account(tmp_path, fake)
    assert [s.status for s in result.steps] == [DONE, DONE, FAILED, SKIPPED]
    assert "may have been created anyway: plan again before applying" in result.failed.detail
    assert sum(1 for m, p, _ in fake.requests if (m, p) == ("POST", "/serverless")) == 2
    assert "rpa_fake" not in result.failed.detail
