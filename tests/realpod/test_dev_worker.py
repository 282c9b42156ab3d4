"""Dev-worker mode is honest: a real `handler.py --rp_serve_api` (runpod's local test API) behind
[endpoints.image] url, the other roles on the simulator."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR
from lib.config import Secret, Settings
from lib.services import build_services
from lib.ui import deps
from tests.console_server import free_port
from tests.realpod.test_minimal_pages import everything_shown

ROOT = Path(__file__).resolve().parents[2]
HANDLER = """import runpod

def handler(job):
    return {"images": [], "echo": job["input"]}

runpod.serverless.start({"handler": handler})
"""


@pytest.fixture(scope="module")
def dev_worker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("devworker")
    (folder / "handler.py").write_text(HANDLER)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    proc = subprocess.Popen([sys.executable, "handler.py", "--rp_serve_api", "--rp_api_port", str(port),
                             "--rp_api_host", "127.0.0.1"], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("runpod's local test API did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def console(tmp_path, monkeypatch):
    started = []

    def _start(image_table: str):
        config = tmp_path / "console.toml"
        config.write_text(f'[volume]\nid = "vol-dev"\n\n[endpoints.image]\n{image_table}\n\n'
                          '[endpoints.special]\nid = "special-sim01"\n\n[simulator]\ntime_scale = 0.002\n')
        services = build_services(Settings(api_key=Secret(""), config_path=config, data_dir=tmp_path / "data"),
                                  start_tracker=False)
        started.append(services)
        st.cache_resource.clear()
        st.cache_data.clear()
        monkeypatch.setattr(deps, "_build", lambda: services)
        return services
    yield _start
    st.cache_resource.clear()
    st.cache_data.clear()
    for services in started:
        services.close()


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["auth.user"] = LOCAL_OPERATOR
    at.run()
    assert not at.exception, at.exception
    if page != "pages/overview.py":
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def test_a_reachable_dev_worker_checked_against_its_models_folder(dev_worker, console, tmp_path):
    models = tmp_path / "ComfyUI" / "models"
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "ava_dev.safetensors").write_bytes(b"x")
    console(f'url = "{dev_worker}"\nmodels_dir = "{models}"')

    overview = open_page("pages/overview.py")
    banner = " ".join(i.value for i in overview.info)
    assert f"**image** → worker under development `{dev_worker}`" in banner
    assert "**special** → local simulator `special-sim01`" in banner
    assert "every job runs on localpod" not in banner
    assert any("Worker under development — reachable" in s.value for s in overview.success)
    assert "Health unavailable" not in everything_shown(overview)

    endpoints = open_page("pages/endpoints.py")
    shown = everything_shown(endpoints)
    assert "worker under development" in shown and "purge, warm-up and min workers exist only" in shown
    labels = [b.label for b in endpoints.button] + [b.label for b in endpoints.get("form_submit_button")]
    assert not any(label.startswith(("Purge", "Warm up", "Raise min")) for label in labels), labels

    generate = open_page("pages/generate.py")
    assert "ava_dev.safetensors" in generate.selectbox(key="gen.lora").options, "LoRAs of the dev worker's folder"
    generate.text_area(key="gen.prompt").input("ava_tok, a harbour").run()
    problems = everything_shown(generate)
    assert "Preflight found" in problems and "flux1-dev" in problems, "checked against the dev worker's folder"


def test_an_unreachable_dev_worker_without_models_dir(console):
    console(f'url = "http://127.0.0.1:{free_port()}"')
    overview = open_page("pages/overview.py")
    assert any("Worker under development — not answering" in w.value for w in overview.warning)
    generate = open_page("pages/generate.py")
    generate.text_area(key="gen.prompt").input("ava_tok, a harbour").run()
    warnings = " ".join(w.value for w in generate.warning)
    assert "Preflight could not check" in warnings and "models_dir" in warnings
    assert generate.selectbox(key="gen.lora").options == ["(no LoRA)"], "no simulated LoRAs for a dev worker"
