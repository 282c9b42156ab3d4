"""Drift between console.toml and REST v2, apply, and warm-up holds — through the real RestV2 client."""
import base64
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from PIL import Image

from lib.config import EndpointSpec
from lib.ops.drift import apply_fix, compare, with_changes
from lib.ops.warmup import WarmupError, WarmupSchedule, restore_due, start_hold, warmup_input
from lib.runpod import RunPod

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


class FakeRest:
    """REST v2 /serverless/{id} GET and PATCH over httpx.MockTransport; records PATCH bodies."""

    def __init__(self, **endpoint):
        self.endpoint = {"id": "img-1", "name": "console-image", "type": "QUEUE",
                         "gpu": {"pools": ["ADA_24", "AMPERE_48"], "count": 1},
                         "workers": {"min": 0, "max": 3, "idleTimeout": 5},
                         "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
                         "timeout": 600000, "flashboot": "FLASHBOOT"}
        self.endpoint.update(endpoint)
        self.patches = []
        self.fail_patches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/serverless/img-1"
        if request.method == "PATCH":
            if self.fail_patches:
                self.fail_patches -= 1
                return httpx.Response(400, json={"title": "Bad Request", "status": 400, "detail": "nope"},
                                      headers={"content-type": "application/problem+json"})
            body = json.loads(request.content)
            self.patches.append(body)
            for key, value in body.items():
                if isinstance(value, dict) and key != "scaling":
                    self.endpoint[key] = {**self.endpoint[key], **value}
                else:
                    self.endpoint[key] = value
        return httpx.Response(200, json=self.endpoint)

    def client(self) -> RunPod:
        return RunPod("k", rest_url="https://api.runpod.io/v2", transport=httpx.MockTransport(self.handler),
                      max_retries=0, sleep=lambda s: None)


SPEC = EndpointSpec(role="image", id="img-1", gpu_pools=("ADA_24", "AMPERE_48"), workers_min=0, workers_max=3,
                    idle_timeout_s=5, scaling_type="QUEUE_DELAY", scaling_value=4, flashboot=True,
                    timeout_ms=600_000)


def test_no_drift_when_live_matches_declared():
    rest = FakeRest()
    report = compare(SPEC, rest.client().rest.endpoint("img-1"))
    assert report.in_sync and report.fix == {}
    assert len(report.rows) == 8 and not any(r.drifted for r in report.rows)


def test_every_drifted_field_is_listed_with_the_patch_that_fixes_it():
    rest = FakeRest(workers={"min": 1, "max": 5, "idleTimeout": 60}, flashboot="OFF", timeout=300000,
                    gpu={"pools": ["AMPERE_48", "ADA_24"]}, scaling={"type": "REQUEST_COUNT", "requestCount": 2})
    report = compare(SPEC, rest.client().rest.endpoint("img-1"))
    drifted = {i.field: (i.declared, i.live) for i in report.items}
    assert drifted == {
        "workers_min": (0, 1), "workers_max": (3, 5), "idle_timeout_s": (5, 60),
        "scaling_type": ("QUEUE_DELAY", "REQUEST_COUNT"), "scaling_value": (4, 2.0), "flashboot": (True, False),
        "timeout_ms": (600_000, 300_000), "gpu_pools": (["ADA_24", "AMPERE_48"], ("AMPERE_48", "ADA_24")),
    }
    assert report.fix == {"workers_min": 0, "workers_max": 3, "idle_timeout_s": 5, "scaling_type": "QUEUE_DELAY",
                          "scaling_value": 4, "flashboot": True, "timeout_ms": 600_000,
                          "gpu_pools": ["ADA_24", "AMPERE_48"]}


def test_scaling_value_drift_alone_still_sends_type_and_value_together():
    rest = FakeRest(scaling={"type": "QUEUE_DELAY", "queueDelay": 2.5})
    report = compare(SPEC, rest.client().rest.endpoint("img-1"))
    assert [i.field for i in report.items] == ["scaling_value"]
    assert report.fix == {"scaling_type": "QUEUE_DELAY", "scaling_value": 4}


def test_priority_flashboot_counts_as_on():
    rest = FakeRest(flashboot="PRIORITY_FLASHBOOT")
    assert compare(SPEC, rest.client().rest.endpoint("img-1")).in_sync


def test_apply_patches_only_drifted_fields_and_reports_in_sync_after():
    rest = FakeRest(workers={"min": 0, "max": 1, "idleTimeout": 5})
    client = rest.client()
    report = compare(SPEC, client.rest.endpoint("img-1"))
    after = apply_fix(client.rest, SPEC, report)
    assert rest.patches == [{"workers": {"max": 3}}]
    assert after.in_sync


def test_apply_an_edited_value_changes_max_workers():
    rest = FakeRest()
    client = rest.client()
    wanted = with_changes(SPEC, {"workers_max": 5})
    after = apply_fix(client.rest, wanted, compare(wanted, client.rest.endpoint("img-1")))
    assert rest.patches == [{"workers": {"max": 5}}] and after.in_sync
    assert client.rest.endpoint("img-1").workers_max == 5
    with pytest.raises(ValueError, match="cannot change colour"):
        with_changes(SPEC, {"colour": "red"})


def test_apply_sends_nothing_without_drift():
    rest = FakeRest()
    client = rest.client()
    apply_fix(client.rest, SPEC, compare(SPEC, client.rest.endpoint("img-1")))
    assert rest.patches == []


def test_warmup_input_is_a_small_comfy_graph_and_training_is_refused():
    job = warmup_input("image")
    graph = job["workflow"]
    assert [n["class_type"] for n in graph.values()] == ["LoadImage", "ImageInvert", "SaveImage"]
    (upload,) = job["images"]
    assert upload["name"] == graph["1"]["inputs"]["image"]
    assert Image.open(io.BytesIO(base64.b64decode(upload["image"]))).size == (8, 8)
    assert len(json.dumps(job)) < 1000  # far below the 10 MB /run limit
    with pytest.raises(WarmupError, match="raising its min workers"):
        warmup_input("training")


def test_hold_raises_min_workers_and_restores_after_the_period(tmp_path):
    rest = FakeRest(workers={"min": 0, "max": 1, "idleTimeout": 5})
    client = rest.client()
    schedule = WarmupSchedule(tmp_path)
    hold = start_hold(client.rest, schedule, role="image", endpoint_id="img-1", workers=2, minutes=10,
                      user="op@x", now=NOW)
    assert rest.patches == [{"workers": {"min": 2, "max": 2}}]
    assert (hold.previous_min, hold.previous_max, hold.until) == (0, 1, NOW + timedelta(minutes=10))

    assert restore_due(client.rest, schedule, NOW + timedelta(minutes=9)) == []
    # A console restart in between: a new schedule object on the same folder still knows the hold.
    done = restore_due(client.rest, WarmupSchedule(tmp_path), NOW + timedelta(minutes=10))
    assert [h.id for h in done] == [hold.id] and done[0].restored_at is not None
    assert rest.patches[-1] == {"workers": {"min": 0, "max": 1}}
    assert restore_due(client.rest, schedule, NOW + timedelta(hours=1)) == []
    assert schedule.active() == []


def test_second_hold_extends_and_keeps_the_original_value_to_restore(tmp_path):
    rest = FakeRest(workers={"min": 1, "max": 3, "idleTimeout": 5})
    client = rest.client()
    schedule = WarmupSchedule(tmp_path)
    start_hold(client.rest, schedule, role="image", endpoint_id="img-1", workers=2, minutes=10, user="a", now=NOW)
    second = start_hold(client.rest, schedule, role="image", endpoint_id="img-1", workers=3, minutes=30, user="b",
                        now=NOW + timedelta(minutes=5))
    assert len(schedule.holds()) == 1
    assert (second.previous_min, second.raised_min) == (1, 3)
    assert second.until == NOW + timedelta(minutes=35)
    restore_due(client.rest, schedule, NOW + timedelta(minutes=35))
    assert rest.endpoint["workers"]["min"] == 1


def test_restore_leaves_a_value_changed_by_hand_and_retries_failed_patches(tmp_path):
    rest = FakeRest()
    client = rest.client()
    schedule = WarmupSchedule(tmp_path)
    start_hold(client.rest, schedule, role="image", endpoint_id="img-1", workers=2, minutes=1, user="a", now=NOW)
    rest.fail_patches = 1
    (failed,) = restore_due(client.rest, schedule, NOW + timedelta(minutes=2))
    assert failed.active and "nope" in failed.last_error
    rest.endpoint["workers"]["min"] = 4  # someone set it by hand meanwhile
    (done,) = restore_due(client.rest, schedule, NOW + timedelta(minutes=3))
    assert not done.active and "kept min workers 4" in done.outcome
    assert rest.endpoint["workers"]["min"] == 4


def test_hold_input_validation(tmp_path):
    rest = FakeRest()
    with pytest.raises(WarmupError, match="at least 1"):
        start_hold(rest.client().rest, WarmupSchedule(tmp_path), role="image", endpoint_id="img-1", workers=0,
                   minutes=5, user="a", now=NOW)
    (tmp_path / "warmup_holds.json").write_text("{broken")
    with pytest.raises(WarmupError, match="cannot read the warm-up schedule"):
        WarmupSchedule(tmp_path).holds()
