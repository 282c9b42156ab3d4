"""Declaration, plan (declared vs live, table-driven) and the Markdown record — pure, no simulator."""
from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from lib.config import ConfigError, ConsoleConfig
from lib.provisioning.declaration import Declaration, DeclarationError, SecretRef, shown_env
from lib.provisioning.docs import render
from lib.provisioning.plan import BLOCKED, CHANGE, CREATE, NEW_VOLUME, UNCHANGED, LiveState, make_plan
from lib.runpod.errors import BadResponse
from lib.runpod.models import Endpoint, NetworkVolume

PRICES = """
[prices]
as_of = "test"
volume_usd_per_gb_month = 0.07
[prices.flex_per_s]
ADA_24 = 0.00031
AMPERE_48 = 0.00034
AMPERE_80 = 0.00076
[prices.active_per_s]
ADA_24 = 0.00021
AMPERE_48 = 0.00024
AMPERE_80 = 0.00060
"""
VOLUME = {"id": "vol-1", "name": "characters", "datacenter": "EU-RO-1", "size_gb": 100}
ENDPOINTS = {
    "image": {"id": "img-1", "name": "console-image", "gpu_pools": ["ADA_24", "AMPERE_48"], "workers_min": 0,
              "workers_max": 3, "idle_timeout_s": 5, "scaling_type": "QUEUE_DELAY", "scaling_value": 4,
              "flashboot": True, "execution_timeout_ms": 600000, "image": "runpod/worker-comfyui:5.8.5-base",
              "container_disk_gb": 20},
    "training": {"id": "trn-1", "name": "console-training", "gpu_pools": ["AMPERE_80"], "workers_min": 0,
                 "workers_max": 2, "idle_timeout_s": 5, "scaling_type": "QUEUE_DELAY", "scaling_value": 4,
                 "flashboot": False, "execution_timeout_ms": 14400000,
                 "image": "serverless-console/lora-trainer:latest", "env": {"HF_TOKEN": "secret:HF_TOKEN"},
                 "min_cuda_version": "13.0"},
    "special": {"id": "spc-1", "name": "console-special", "gpu_pools": ["ADA_24"], "workers_min": 0,
                "workers_max": 2, "idle_timeout_s": 5, "scaling_type": "QUEUE_DELAY", "scaling_value": 4,
                "flashboot": True, "execution_timeout_ms": 600000, "image": "runpod/worker-comfyui:5.8.5-base"},
}
MONTH_S = 3600 * 730


def _value(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def toml_text(volume: dict, endpoints: dict) -> str:
    """console.toml from tables; a key set to None is left out."""
    lines = ["[volume]"] + [f"{k} = {_value(v)}" for k, v in volume.items() if v is not None]
    for role, table in endpoints.items():
        lines += ["", f"[endpoints.{role}]"] + [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n" + PRICES


def config(volume: dict | None = None, **changes: dict) -> ConsoleConfig:
    """The base config with some keys replaced, e.g. config(image={"workers_max": 5})."""
    endpoints = copy.deepcopy(ENDPOINTS)
    for role, values in changes.items():
        endpoints[role].update(values)
    return ConsoleConfig.parse(toml_text({**VOLUME, **(volume or {})}, endpoints))


def declaration(volume: dict | None = None, **changes: dict) -> Declaration:
    return Declaration.from_config(config(volume, **changes))


def live_endpoint(role: str, **changes) -> Endpoint:
    """RunPod's REST v2 answer for a base endpoint exactly as declared; `changes` override JSON keys."""
    t = ENDPOINTS[role]
    body = {
        "id": t["id"], "name": t["name"], "type": "QUEUE", "image": t["image"],
        "gpu": {"pools": t["gpu_pools"], "count": 1,
                **({"minCudaVersion": t["min_cuda_version"]} if t.get("min_cuda_version") else {})},
        "workers": {"min": t["workers_min"], "max": t["workers_max"], "idleTimeout": t["idle_timeout_s"]},
        "scaling": {"type": t["scaling_type"], "queueDelay": t["scaling_value"]},
        "timeout": t["execution_timeout_ms"], "flashboot": "FLASHBOOT" if t["flashboot"] else "OFF",
        "dataCenterIds": ["EU-RO-1"], "networkVolumes": ["vol-1"],
        "env": {k: f"{{{{ RUNPOD_SECRET_{v[7:]} }}}}" for k, v in t.get("env", {}).items()},
    }
    if "container_disk_gb" in t:
        body["disk"] = t["container_disk_gb"]
    for key, value in changes.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) and key != "env" else value
    return Endpoint.from_json(body, "test")


def live_volume(**changes) -> NetworkVolume:
    body = {"id": "vol-1", "name": "characters", "size": 100, "dataCenter": "EU-RO-1", "type": "STANDARD"}
    return NetworkVolume.from_json({**body, **changes}, "test")


def in_sync(**endpoint_changes) -> LiveState:
    """Live state equal to the declaration, except the JSON changes given per role."""
    return LiveState(endpoints=tuple(live_endpoint(role, **endpoint_changes.get(role, {})) for role in ENDPOINTS),
                     volumes=(live_volume(),))


# --------------------------------------------------------------------------- declaration


def test_the_repository_console_toml_is_a_valid_declaration(console_config):
    decl = Declaration.from_config(console_config)
    assert [d.spec.role for d in decl.endpoints] == ["image", "training", "special"]
    training = decl.endpoint("training")
    assert training.env == {"HF_TOKEN": SecretRef("HF_TOKEN")}
    assert training.runpod_env == {"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}"}
    assert decl.endpoint("image").spec.image.startswith("runpod/worker-comfyui:5.")
    assert all(decl.volume.datacenter in d.spec.data_center_ids for d in decl.endpoints)


def test_defaults_fill_what_the_file_leaves_out():
    decl = declaration(image={"container_disk_gb": None, "image": None, "name": None})
    image = decl.endpoint("image")
    assert image.spec.name == "console-image" and image.spec.image == "runpod/worker-comfyui:5.8.5-base"
    assert image.gpu_count == 1 and image.disk_gb is None and image.env is None
    assert image.spec.data_center_ids == ("EU-RO-1",)


@pytest.mark.parametrize("changes, volume, message", [
    ({"training": {"image": None}}, None, "[endpoints.training] needs image"),
    ({"image": {"gpu_pools": ["ADA_24", "AMPERE_48", "AMPERE_80", "ADA_24"]}}, None, "at most 3"),
    ({"image": {"gpu_pools": ["ADA_24", "TPU_9000"]}}, None, "'TPU_9000' is not a RunPod serverless pool"),
    ({"image": {"gpu_count": 0}}, None, "gpu_count must be a whole number of at least 1"),
    ({"image": {"container_disk_gb": "20"}}, None, "container_disk_gb must be a whole number"),
    ({"image": {"data_centers": "EU-RO-1"}}, None, "data_centers must be a list"),
    ({"image": {"data_centers": ["US-KS-2"]}}, None, "leaves out EU-RO-1, the network volume's datacenter"),
    ({"image": {"execution_timeout_ms": 1000}}, None, "execution_timeout_ms must be between 5000"),
    ({"image": {"idle_timeout_s": 4000}}, None, "idle_timeout_s must be between 1 and 3600"),
    ({"special": {"name": "console-image"}}, None, "are both named 'console-image'"),
    ({"image": {"env": {"COMFY_LOG_LEVEL": 3}}}, None, "env.COMFY_LOG_LEVEL must be a string"),
    ({"image": {"env": {"X": "secret:not a name"}}}, None, "write a secret as \"secret:NAME\""),
    ({}, {"size_gb": 5000}, "[volume] size_gb must be between 10 and 4096"),
    ({"training": {"min_cuda_version": "14.2"}}, None, "min_cuda_version: '14.2' is not a CUDA version RunPod"),
    ({"training": {"allowed_cuda_versions": ["12.x"]}}, None, "allowed_cuda_versions: '12.x' is not a CUDA"),
    ({"training": {"min_cuda_version": "13.0", "allowed_cuda_versions": ["12.8"]}}, None,
     "are all below min_cuda_version 13.0"),
])
def test_declaration_problems_are_reported_with_their_table(changes, volume, message):
    with pytest.raises(DeclarationError) as caught:
        declaration(volume, **changes)
    assert any(message in p for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("key, value", [
    ("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz012345"),
    ("RUNPOD_KEY", "rpa_0123456789ABCDEF0123456789ABCDEF"),
    ("S3_SECRET", "rps_0123456789abcdef"),
    ("BUCKET_SECRET_ACCESS_KEY", "plain-looking-but-named-secret"),
])
def test_a_literal_secret_is_refused_without_repeating_it(key, value):
    # console.toml itself refuses it on load (lib.config), before provisioning reads it.
    with pytest.raises(ConfigError) as caught:
        declaration(image={"env": {key: value}})
    text = str(caught.value)
    assert f"env.{key} holds what looks like a secret" in text and '"secret:HF_TOKEN"' in text
    assert value not in text


def test_harmless_variables_that_merely_contain_token_are_kept():
    decl = declaration(image={"env": {"TOKENIZERS_PARALLELISM": "false", "COMFY_LOG_LEVEL": "INFO"}})
    assert decl.endpoint("image").runpod_env == {"TOKENIZERS_PARALLELISM": "false", "COMFY_LOG_LEVEL": "INFO"}


def test_a_dev_worker_endpoint_is_not_provisioned_and_a_volume_outside_s3_is_noted():
    endpoints = copy.deepcopy(ENDPOINTS)
    endpoints["special"] = {"url": "http://localhost:8000", "name": "dev-special"}
    cfg = ConsoleConfig.parse(toml_text({**VOLUME, "datacenter": "US-TX-3"},
                                        {r: ({**t, "data_centers": ["US-TX-3"]} if r != "special" else t)
                                         for r, t in endpoints.items()}))
    decl = Declaration.from_config(cfg)
    assert [d.spec.role for d in decl.endpoints] == ["image", "training"]
    assert any("worker under development" in n for n in decl.notes)
    assert any("US-TX-3 is not among the datacenters with RunPod's S3 API" in n for n in decl.notes)


def test_environment_values_are_shown_without_secrets():
    shown = shown_env({"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}", "API_KEY": "abc", "X": "rpa_123",
                       "LEVEL": "INFO"})
    assert shown == "API_KEY=•••• (hidden); HF_TOKEN=secret HF_TOKEN; LEVEL=INFO; X=•••• (hidden)"


# --------------------------------------------------------------------------- plan

ACTIVE = {"ADA_24": 0.00021, "AMPERE_48": 0.00024, "AMPERE_80": 0.00060}


@pytest.mark.parametrize("name, declared, live, rows, cost", [
    ("in sync", {}, {}, [], 0.0),
    ("max workers raised in the file", {"image": {"workers_max": 5}}, {},
     [("endpoint console-image (image)", "Max workers", "3", "5")], 0.0),
    ("a min worker added", {"image": {"workers_min": 1}}, {},
     [("endpoint console-image (image)", "Min (active) workers", "0", "1")], ACTIVE["ADA_24"] * MONTH_S),
    ("a min worker removed by hand on RunPod is restored", {"training": {"workers_min": 1}},
     {"training": {"workers": {"min": 0}}},
     [("endpoint console-training (training)", "Min (active) workers", "0", "1")], ACTIVE["AMPERE_80"] * MONTH_S),
    ("a first pool change prices the existing min workers anew",
     {"image": {"workers_min": 2, "gpu_pools": ["AMPERE_48", "ADA_24"]}},
     {"image": {"workers": {"min": 2}}},
     [("endpoint console-image (image)", "GPU pools (in order)", "ADA_24, AMPERE_48", "AMPERE_48, ADA_24")],
     2 * (ACTIVE["AMPERE_48"] - ACTIVE["ADA_24"]) * MONTH_S),
    ("two GPUs per worker cost twice", {"training": {"workers_min": 1, "gpu_count": 2}},
     {"training": {"workers": {"min": 1}}},
     [("endpoint console-training (training)", "GPUs per worker", "1", "2")], ACTIVE["AMPERE_80"] * MONTH_S),
    ("priority FlashBoot counts as FlashBoot on", {}, {"image": {"flashboot": "PRIORITY_FLASHBOOT"}}, [], 0.0),
    ("a fractional queue delay equal in value is no change", {}, {"image": {"scaling": {"queueDelay": 4.0}}},
     [], 0.0),
    ("datacenters in another order are the same", {"image": {"data_centers": ["EU-RO-1", "EU-CZ-1"]}},
     {"image": {"dataCenterIds": ["EU-CZ-1", "EU-RO-1"]}}, [], 0.0),
    ("an image upgrade", {"image": {"image": "runpod/worker-comfyui:5.9.0-base"}}, {},
     [("endpoint console-image (image)", "Container image", "runpod/worker-comfyui:5.8.5-base",
       "runpod/worker-comfyui:5.9.0-base")], 0.0),
    ("the volume unmounted by hand", {}, {"special": {"networkVolumes": []}},
     [("endpoint console-special (special)", "Network volume", "(none)", "vol-1")], 0.0),
    ("an env value added by hand is removed, a secret shown by name only", {},
     {"training": {"env": {"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}", "DEBUG_TOKEN": "hf_live_value"}}},
     [("endpoint console-training (training)", "Environment",
       "DEBUG_TOKEN=•••• (hidden); HF_TOKEN=secret HF_TOKEN", "HF_TOKEN=secret HF_TOKEN")], 0.0),
    ("an env the file does not manage is left alone", {}, {"image": {"env": {"EXTRA": "1"}}}, [], 0.0),
    ("a container disk change", {"image": {"container_disk_gb": 40}}, {},
     [("endpoint console-image (image)", "Container disk (GB)", "20", "40")], 0.0),
    ("the idle timeout does not apply to request-count scaling",
     {"special": {"scaling_type": "REQUEST_COUNT", "scaling_value": 2, "idle_timeout_s": 30}},
     {"special": {"scaling": {"type": "REQUEST_COUNT", "requestCount": 2}}}, [], 0.0),
    ("scaling type and value change together", {"special": {"scaling_type": "REQUEST_COUNT", "scaling_value": 2}},
     {}, [("endpoint console-special (special)", "Scaling type", "QUEUE_DELAY", "REQUEST_COUNT"),
          ("endpoint console-special (special)", "Scaling value", "4", "2")], 0.0),
])
def test_plan_lists_each_drifted_field_with_its_cost(name, declared, live, rows, cost):
    plan = make_plan(declaration(**declared), in_sync(**live))
    assert [(r["resource"], r["setting"], r["live"], r["console.toml"]) for r in plan.rows()] == rows, name
    assert plan.monthly_cost_delta_usd == pytest.approx(cost), name
    assert plan.has_work == bool(rows)
    assert not plan.unmanaged


def test_the_patch_of_a_change_is_exactly_the_drifted_fields():
    decl = declaration(image={"workers_max": 5}, special={"scaling_type": "REQUEST_COUNT", "scaling_value": 2},
                       training={"image": "serverless-console/lora-trainer:2"})
    plan = make_plan(decl, in_sync(special={"networkVolumes": []}))
    patches = {r.role: dict(r.patch) for r in plan.to_change}
    assert patches == {
        "image": {"workers_max": 5},
        "training": {"image": "serverless-console/lora-trainer:2"},
        "special": {"scaling_type": "REQUEST_COUNT", "scaling_value": 2, "network_volume_ids": ["vol-1"]},
    }


def test_an_empty_account_means_creating_everything():
    plan = make_plan(declaration(image={"workers_min": 1}), LiveState((), ()))
    assert [(r.kind, r.action) for r in plan.resources] == [("volume", CREATE)] + [("endpoint", CREATE)] * 3
    assert plan.monthly_cost_delta_usd == pytest.approx(100 * 0.07 + ACTIVE["ADA_24"] * MONTH_S)
    creates = {r["resource"]: r["console.toml"] for r in plan.rows()}
    assert creates["network volume characters"] == "100 GB in EU-RO-1"
    assert "secrets HF_TOKEN" in creates["endpoint console-training (training)"]
    assert "hf_" not in json.dumps(plan.rows())


def test_a_live_endpoint_found_by_name_gets_its_id_written_back():
    live = in_sync(image={"id": "q8v2runpodid1"})
    plan = make_plan(declaration(), live)
    image = next(r for r in plan.resources if r.role == "image")
    assert image.action == UNCHANGED and image.rebind and image.live_id == "q8v2runpodid1"
    assert plan.has_work
    assert plan.rows() == [{"resource": "endpoint console-image (image)", "action": "write id",
                            "setting": "id in console.toml", "live": "q8v2runpodid1", "console.toml": "was img-1",
                            "$/month": None}]


def test_an_ambiguous_name_blocks_instead_of_guessing():
    twins = (live_endpoint("image", id="a1"), live_endpoint("image", id="b2"))
    live = LiveState(twins + (live_endpoint("training"), live_endpoint("special")), (live_volume(),))
    image = next(r for r in make_plan(declaration(), live).resources if r.role == "image")
    assert image.action == BLOCKED and "2 live endpoints are named 'console-image' (a1, b2)" in image.problems[0]


@pytest.mark.parametrize("volume, live, action, text", [
    ({}, {"size": 200}, BLOCKED, "never shrinks — set [volume] size_gb = 200"),
    ({}, {"dataCenter": "US-KS-2"}, BLOCKED, "a volume's datacenter cannot change"),
    ({"size_gb": 150}, {}, CHANGE, "Size (GB)"),
    ({"name": "faces"}, {}, CHANGE, "Name"),
])
def test_volume_changes_and_what_cannot_change(volume, live, action, text):
    state = LiveState(in_sync().endpoints, (live_volume(**live),))
    plan = make_plan(declaration(volume), state)
    vol = plan.resources[0]
    assert vol.action == action
    assert text in " ".join(vol.problems) + " ".join(c.label for c in vol.changes)
    if volume.get("size_gb"):
        assert vol.patch == {"size_gb": 150} and vol.monthly_cost_delta_usd == pytest.approx(50 * 0.07)


def test_a_new_volume_is_mounted_by_endpoints_that_exist_already():
    live = LiveState(in_sync().endpoints, ())
    plan = make_plan(declaration(), live)
    assert plan.resources[0].action == CREATE
    for r in plan.resources[1:]:
        assert r.action == CHANGE and r.patch == {"network_volume_ids": [NEW_VOLUME]}
        assert r.changes[0].declared == "(the new volume)"


def test_live_resources_not_in_the_file_are_listed_not_touched():
    extra = Endpoint.from_json({"id": "old1", "name": "old-experiment", "gpu": {"pools": ["ADA_24"]},
                                "workers": {"min": 0, "max": 1}}, "test")
    state = LiveState(in_sync().endpoints + (extra,), (live_volume(), live_volume(id="vol-2", name="scratch")))
    plan = make_plan(declaration(), state)
    assert not plan.has_work
    assert [(u.kind, u.id, u.name) for u in plan.unmanaged] == [
        ("endpoint", "old1", "old-experiment"), ("network volume", "vol-2", "scratch")]


def test_an_unpriced_live_pool_is_costed_at_the_declared_pool():
    plan = make_plan(declaration(image={"workers_min": 1}),
                     in_sync(image={"gpu": {"pools": ["ADA_32_PRO"]}, "workers": {"min": 1}}))
    image = next(r for r in plan.resources if r.role == "image")
    assert image.monthly_cost_delta_usd == 0.0
    assert any("ADA_32_PRO has no price" in n for n in image.notes)


# --------------------------------------------------------------------------- Markdown record


def test_the_record_describes_live_values_marks_drift_and_hides_secrets():
    live = in_sync(image={"workers": {"max": 7}},
                   training={"env": {"HF_TOKEN": "{{ RUNPOD_SECRET_HF_TOKEN }}", "OTHER_TOKEN": "hf_secretvalue"}})
    decl = declaration()
    text = render(decl, live, make_plan(decl, live), backend="RunPod", now=datetime(2026, 7, 1, tzinfo=UTC))
    assert text.startswith("# Serverless configuration — 2026-07-01 00:00 UTC")
    assert "| Volume id (= S3 bucket) | `vol-1` |  |" in text
    assert "| Workers min / max | 0 / 7 | console.toml: 3 |" in text
    assert "HF_TOKEN=secret HF_TOKEN" in text and "hf_secretvalue" not in text
    assert "Secrets it reads from the RunPod account: HF_TOKEN." in text


def test_the_record_says_what_is_not_created_yet():
    decl = declaration()
    live = LiveState((live_endpoint("image"),), ())
    text = render(decl, live, make_plan(decl, live), backend="RunPod", now=datetime(2026, 7, 1, tzinfo=UTC))
    assert "**characters** is not created yet (declared: 100 GB in EU-RO-1)." in text
    assert "### console-training — training\n\nNot created yet." in text
    assert "| Endpoint id | `img-1` |" in text


def test_live_environment_and_disk_are_read_from_either_answer_shape():
    v2 = Endpoint.from_json({"id": "e1", "env": {"A": "b"}, "disk": 20}, "test")
    v1 = Endpoint.from_json({"id": "e1", "env": [{"key": "A", "value": "b"}]}, "test")
    assert (v2.env, v2.disk_gb, v1.env, v1.disk_gb) == ({"A": "b"}, 20, {"A": "b"}, None)
    assert "hf_" not in repr(Endpoint.from_json({"id": "e1", "env": {"T": "hf_secret"}}, "test"))
    with pytest.raises(BadResponse, match="field 'env' is a number, expected an object of strings"):
        Endpoint.from_json({"id": "e1", "env": 5}, "test")
