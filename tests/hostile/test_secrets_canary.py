"""Secrets canary: the console in RunPod mode (API key set) with canary credentials renders EVERY
page registered in app.py, and neither a page, a log line, a stored payload nor a CSV export
carries the API key or the S3 secret.

RunPod is a LocalPod started with api_key = the canary key (so every request really carries it);
the network volume is S3 (moto, in process) reached with the canary S3 secret and filled with
the simulator's demo tree. Jobs are submitted and finished before the pages are rendered, so the
pages show real records, outputs and audit entries.
"""
from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import boto3
import pytest
import streamlit as st
from moto import mock_aws
from streamlit.testing.v1 import AppTest

from lib import audit, inference
from lib.auth import LOCAL_OPERATOR
from lib.config import ConsoleConfig, Secret, Settings
from lib.costs import to_csv_bytes
from lib.localpod.server import LocalPod
from lib.services import build_services
from lib.ui import deps
from lib.workflows import load_template

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
# Under mock_aws this host never leaves the process; a real RunPod S3 URL would look the same.
S3_URL = "https://s3.amazonaws.com"


def registered_pages() -> list[str]:
    """Every st.Page("pages/….py") in app.py (PAGES and pages added by role), read from its source."""
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    pages = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Page"
                and node.args and isinstance(node.args[0], ast.Constant)):
            pages.append(node.args[0].value)
    return pages


PAGES = registered_pages()


@pytest.fixture(scope="module")
def canary_console(tmp_path_factory, canary):
    root = tmp_path_factory.mktemp("canary")
    config_text = re.sub(r"(?m)^time_scale = .*$", "time_scale = 0.002",
                         (ROOT / "console.toml").read_text(encoding="utf-8"))
    config_path = root / "console.toml"
    config_path.write_text(config_text, encoding="utf-8")
    config = ConsoleConfig.load(config_path)
    pod = LocalPod(root / "localpod", config, api_key=canary.api_key, time_scale=0.002, seed_demo=True).start()
    with mock_aws():
        s3 = boto3.client("s3", endpoint_url=S3_URL, region_name=config.volume.datacenter,
                          aws_access_key_id=canary.s3_access, aws_secret_access_key=canary.s3_secret)
        s3.create_bucket(Bucket=config.volume.id,
                         CreateBucketConfiguration={"LocationConstraint": config.volume.datacenter})
        for path in sorted(pod.volume_dir.rglob("*")):
            if path.is_file():
                s3.put_object(Bucket=config.volume.id, Key=path.relative_to(pod.volume_dir).as_posix(),
                              Body=path.read_bytes())
        settings = Settings(api_key=Secret(canary.api_key), api_url=pod.api_url, rest_url=pod.rest_url,
                            s3_access_key=Secret(canary.s3_access), s3_secret_key=Secret(canary.s3_secret),
                            s3_url=S3_URL, config_path=config_path, data_dir=root / "data")
        services = build_services(settings)
        try:
            template = load_template("z_image_turbo_lora")
            planned = inference.plan_images(template, {"prompt": "ava on a beach", "seed": 7}, count=2,
                                            random_seed=False)
            result = inference.submit(services, planned, user_email=LOCAL_OPERATOR.email,
                                      request_key="canary", kind="generate")
            assert len(result.local_ids) == 2 and not result.errors, result.errors
            services.tracker.wait_for(result.local_ids, timeout_s=30)
            yield services
        finally:
            services.close()
            pod.stop()


@pytest.fixture
def app_on_canary(canary_console, monkeypatch):
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setattr(deps, "_build", lambda: canary_console)
    yield canary_console
    st.cache_data.clear()
    st.cache_resource.clear()


def rendered_text(at: AppTest) -> str:
    """Every element's full content (text, markdown, json, dataframe bytes, exceptions) as text."""
    parts = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_app_registers_pages():
    assert "pages/overview.py" in PAGES and len(PAGES) >= 2


def test_the_canary_console_really_uses_the_canary(canary_console):
    assert not canary_console.simulated, "RunPod mode: the API key is set"
    assert canary_console.client.rest.endpoint("image-sim01").id == "image-sim01", "the canary key is accepted"
    assert list(canary_console.volume.list("models/loras/")), "the S3 volume is reached with the canary secret"


@pytest.fixture
def all_logs(caplog):
    """caplog, also fed by Streamlit's own loggers (which do not propagate to the root logger)."""
    caplog.set_level(logging.DEBUG)
    streamlit_logger = logging.getLogger("streamlit")
    streamlit_logger.addHandler(caplog.handler)
    yield caplog
    streamlit_logger.removeHandler(caplog.handler)


@pytest.mark.parametrize("page_file", PAGES)
def test_no_page_shows_or_logs_a_secret(page_file, app_on_canary, all_logs, canary):
    with mock_aws():
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.session_state["auth.user"] = LOCAL_OPERATOR  # operators see every page, Audit included
        at.run()
        # AppTest keeps the app's own chrome (banner, sidebar) of the first run only: scan both runs.
        chrome = rendered_text(at)
        at.switch_page(page_file).run()
    assert not at.exception, f"{page_file} failed in RunPod mode: {at.exception}"
    text = chrome + rendered_text(at)
    assert "Connected to **RunPod**" in chrome, "the console runs in RunPod mode"
    assert len(text) > 100, f"{page_file} rendered next to nothing"
    assert all_logs.records, "the page's activity was logged (at least httpx/botocore debug lines)"
    assert canary.find(text) == [], f"{page_file} shows a secret"
    assert canary.find(all_logs.text) == [], f"{page_file} logged a secret"


def test_stored_payloads_hold_no_secret(canary_console, canary):
    data_dir = Path(canary_console.data_dir)
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "console.sqlite" for p in files)
    leaking = [str(p.relative_to(data_dir)) for p in files if canary.find(p.read_bytes())]
    assert leaking == []
    records = canary_console.store.list(limit=100)
    assert records and all(canary.find(repr(r) + str(r.input) + str(r.output) + str(r.error)) == []
                           for r in records)


def test_exports_hold_no_secret(canary_console, canary):
    entries = canary_console.store.audit_entries()
    assert entries, "the submissions were audited"
    exports = {"audit.csv": audit.audit_csv(entries), "jobs.csv": to_csv_bytes(canary_console.store.jobs_frame())}
    assert all(len(data) > 50 for data in exports.values())
    assert {name: canary.find(data) for name, data in exports.items()} == {name: [] for name in exports}


def test_reprs_of_everything_shared_hold_no_secret(canary_console, canary):
    shared = [canary_console, canary_console.settings, canary_console.client, canary_console.volume,
              canary_console.tracker, canary_console.client.endpoint("image-sim01")]
    assert [canary.find(repr(obj) + str(obj)) for obj in shared] == [[]] * len(shared)
