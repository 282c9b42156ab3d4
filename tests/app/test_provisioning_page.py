"""AppTest: the Provisioning page — plan, apply (confirmed, operator only), failure halfway, models, records.

The page is opened with AppTest.from_file until app.py lists it. Most tests run on a console of their
own whose simulator starts empty (a fresh RunPod account), built like tests/app/conftest.py's.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import lib.localpod.server as localpod_server
from lib.auth import LOCAL_OPERATOR, Forbidden
from lib.config import ConsoleConfig, Secret, Settings
from lib.provisioning.service import Provisioning
from lib.services import build_services
from lib.ui import deps
from lib.volume import VolumeError
from tests.app.steps import button, table

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "provisioning.py")


def page(user=LOCAL_OPERATOR) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth.user"] = user
    at.run()
    assert not at.exception, at.exception
    return at


class EmptyConsole:
    """Services on an empty simulator; every (re)build after an apply is tracked and closed at the end."""

    def __init__(self, folder: Path):
        text = (ROOT / "console.toml").read_text()
        text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.002", text)
        text = re.sub(r"(?m)^operators = \[\]$", 'operators = ["ops@example.com"]', text)
        text = re.sub(r"(?m)^staff = \[\]$", 'staff = ["staff@example.com"]', text)
        text = re.sub(r"(?m)^viewers = \[\]$", 'viewers = ["viewer@example.com"]', text)
        self.path = folder / "console.toml"
        self.path.write_text(text)
        self.settings = Settings(api_key=Secret(""), config_path=self.path, data_dir=folder / "data")
        self.built = []

    def build(self):
        services = build_services(self.settings)
        self.built.append(services)
        return services

    @property
    def services(self):
        return self.built[-1]

    def config(self) -> ConsoleConfig:
        return ConsoleConfig.load(self.path)

    def edit(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text
        self.path.write_text(text.replace(old, new, 1))

    def admin(self, **settings) -> None:
        pod = self.services.localpod
        httpx.put(f"{pod.url}/admin/settings", json=settings,
                  headers={"Authorization": f"Bearer {pod._api_key}"}).raise_for_status()


@pytest.fixture
def empty(tmp_path, monkeypatch):
    # The console's simulator starts empty: LOCALPOD_EMPTY=1 once lib/services.py reads it, and the
    # same through the LocalPod class it builds until then.
    monkeypatch.setenv("LOCALPOD_EMPTY", "1")
    monkeypatch.setattr(localpod_server, "LocalPod", functools.partial(localpod_server.LocalPod, empty=True))
    console = EmptyConsole(tmp_path)
    monkeypatch.setattr(deps, "_build", console.build)
    yield console
    for services in console.built:
        services.close()


def test_on_the_demo_simulator_the_plan_is_in_sync(console):
    at = page()
    assert "Local RunPod simulator matches console.toml." in [s.value for s in at.success]
    assert not [b for b in at.button if b.label == "Apply…"]
    record = at.markdown[-1].value
    assert "| Endpoint id | `image-sim01` |  |" in record and "HF_TOKEN=secret HF_TOKEN" in record


def test_plan_then_apply_on_an_empty_account(empty):
    at = page()
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["To create"], metrics["To change"], metrics["Unchanged"]) == ("4", "0", "0")
    assert metrics["Monthly cost of the change"] == "+$14.00"       # 200 GB at $0.07, no min workers
    assert list(table(at, "resource")["action"]) == ["create"] * 4
    button(at, "Apply…").click().run()
    steps = next(m.value for m in at.markdown if m.value.startswith("1. "))
    assert [line.split(":")[0] for line in steps.splitlines()] == [
        "1. Create network volume characters", "2. Create endpoint console-image (image)",
        "3. Create endpoint console-training (training)", "4. Create endpoint console-special (special)"]
    assert list(empty.services.client.rest.endpoints()) == []           # nothing before confirming
    button(at, "Apply").click().run()
    assert not at.exception, at.exception
    assert "Applied." in [s.value for s in at.success]
    assert list(table(at, "result")["result"]) == ["done"] * 4
    config = empty.config()
    assert config.endpoint("image").id != "image-sim01" and config.volume.id != "vol-characters"
    # The console reloaded itself on the applied file: every page now uses the new ids.
    assert len(empty.built) == 2 and empty.services.config.endpoint("image").id == config.endpoint("image").id
    assert "matches console.toml" in " ".join(s.value for s in at.success)
    overview = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60)
    overview.session_state["auth.user"] = LOCAL_OPERATOR
    overview.run()
    assert not overview.exception and not [e.value for e in overview.error]
    entry = empty.services.store.audit_entries(action="apply", limit=1)[0]
    assert entry.user == LOCAL_OPERATOR.email and entry.detail["done"] == 4 and entry.detail["failed"] is None


def test_a_max_workers_edit_in_the_file_is_a_one_line_plan(empty):
    at = page()
    prov = Provisioning(empty.services)
    prov.apply(prov.plan(prov.declaration(), prov.live()), prov.declaration(), LOCAL_OPERATOR.email)
    empty.edit("workers_max = 3", "workers_max = 5")
    at.run()
    rows = table(at, "resource")
    assert rows[["resource", "setting", "live", "console.toml"]].values.tolist() == [
        ["endpoint console-image (image)", "Max workers", "3", "5"]]
    assert any("console.toml changed since the console started" in i.value for i in at.info)


def test_a_failure_halfway_shows_what_was_done(empty):
    at = page()
    empty.admin(worker_quota=4)
    button(at, "Apply…").click().run()
    button(at, "Apply").click().run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("Stopped at “Create endpoint console-training (training)")
    assert "worker quota is 4" in error
    assert list(table(at, "result")["result"]) == ["done", "done", "failed", "skipped"]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["To create"], metrics["Unchanged"]) == ("2", "2")      # the rest is still planned


def test_a_plan_that_went_stale_is_not_applied(empty):
    at = page()
    button(at, "Apply…").click().run()
    empty.services.client.rest.create_network_volume(name="characters", size_gb=200, datacenter="EU-RO-1")
    button(at, "Apply").click().run()
    assert any("changed since this plan was made" in w.value for w in at.warning)
    assert len(list(empty.services.client.rest.network_volumes())) == 1


def test_only_operators_provision(empty, users):
    for role in ("viewer", "staff"):
        at = page(users[role])
        assert [w.value for w in at.warning] == ["Provisioning is for operators."]
        assert not at.button and not at.dataframe and not at.table
    prov = Provisioning(empty.services)
    with pytest.raises(Forbidden):
        prov.apply(prov.plan(prov.declaration(), prov.live()), prov.declaration(), users["staff"].email)
    assert list(empty.services.client.rest.network_volumes()) == []


def test_a_secret_written_in_the_file_is_refused_without_showing_it(empty):
    page()  # the console runs; then someone writes a secret into console.toml
    empty.edit('env = { HF_TOKEN = "secret:HF_TOKEN" }', 'env = { HF_TOKEN = "hf_abcdefghijklmnop" }')
    at = page()
    [error] = [e.value for e in at.error]
    assert "endpoints.training.env.HF_TOKEN holds what looks like a secret" in error  # refused on load
    assert "hf_abcdefghijklmnop" not in error and not at.dataframe and not at.table


def test_missing_models_are_listed_and_one_is_uploaded(empty, tmp_path):
    at = page()
    image = table(at, "model")
    assert set(image["state"]) == {"missing"} and "models/unet/z_image_turbo_bf16.safetensors" in set(image["model"])
    local = tmp_path / "downloads"
    local.mkdir()
    (local / "z_image_turbo_bf16.safetensors").write_bytes(b"weights" * 1000)
    at.text_input(key="prov.folder").set_value(str(local))
    at.multiselect(key="prov.chosen").set_value(["models/unet/z_image_turbo_bf16.safetensors"])
    button(at, "Upload").click().run()
    assert not at.exception, at.exception
    assert "Uploaded 1 file(s)." in [s.value for s in at.success]
    states = dict(table(at, "model")[["model", "state"]].values.tolist())
    assert states["models/unet/z_image_turbo_bf16.safetensors"] == "present"
    assert empty.services.volume.read("models/unet/z_image_turbo_bf16.safetensors") == b"weights" * 1000
    entry = empty.services.store.audit_entries(action="upload", limit=1)[0]
    assert entry.target == "models/unet/z_image_turbo_bf16.safetensors"


def test_deleting_an_endpoint_not_in_the_file_needs_its_name(empty):
    at = page()
    extra = empty.services.client.rest.create_endpoint(name="old-experiment", image="x:1", gpu_pools=["ADA_24"])
    at.run()
    assert "old-experiment" in set(table(at, "kind")["name"])
    button(at, "Delete…").click().run()
    assert button(at, "Delete").disabled
    at.text_input(key="prov.typed").set_value("old-experiment").run()
    button(at, "Delete").click().run()
    assert not at.exception, at.exception
    assert f"Deleted old-experiment ({extra.id})." in [s.value for s in at.success]
    assert extra.id not in {e.id for e in empty.services.client.rest.endpoints()}
    assert empty.services.store.audit_entries(action="delete", limit=1)[0].target == f"endpoint:{extra.id}"


def test_uploading_again_skips_what_is_there_and_never_replaces_another_file(empty, tmp_path):
    page()
    prov = Provisioning(empty.services, part_size=1024)
    local = tmp_path / "hub" / "models--black-forest-labs--FLUX.1-dev"
    (local / "refs").mkdir(parents=True)
    (local / "refs" / "main").write_text("rev1")
    (local / "snapshots" / "rev1").mkdir(parents=True)
    (local / "snapshots" / "rev1" / "model.safetensors").write_bytes(b"w" * 5000)
    folder = ".cache/huggingface/hub/models--black-forest-labs--FLUX.1-dev/"
    first = prov.upload(tmp_path / "hub", [folder], LOCAL_OPERATOR.email)
    assert [(r.key.removeprefix(folder), r.parts) for r in first.files] == [
        ("refs/main", 1), ("snapshots/rev1/model.safetensors", 5)]
    assert prov.upload(tmp_path / "hub", [folder], LOCAL_OPERATOR.email).files == ()
    states = {s.requirement.path: s.status for s in prov.readiness()}
    assert states[folder] == "present"
    (local / "refs" / "main").write_text("another revision")
    with pytest.raises(VolumeError, match="refs/main is already on the volume with another size"):
        prov.upload(tmp_path / "hub", [folder], LOCAL_OPERATOR.email)
    with pytest.raises(Forbidden):
        prov.upload(tmp_path / "hub", [folder], "staff@example.com")
