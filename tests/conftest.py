"""Fixtures shared by every test folder.

- `console_config`  the repo's console.toml, parsed (session).
- `basic_config`    the same plus [endpoints.basic] (id "basic-sim01"), a role no handler claims,
                    so its jobs run localpod's configurable `basic` handler (session).
- `localpod`        one in-process simulator for the whole session: repo config, api_key
                    "test-key", time_scale 0.002 (a 90 s cold start takes 0.18 s), no demo seed.
                    Treat its endpoints and faults as read-only.
- `start_localpod`  factory for private simulators, stopped after the test:
                    start_localpod(config=None, data_dir=None, **LocalPod kwargs).
- `fresh_localpod`  a private simulator like `localpod`, for tests that change endpoints or faults.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lib.config import ConsoleConfig
from lib.localpod.config import PodConfig
from lib.localpod.server import LocalPod

ROOT = Path(__file__).resolve().parents[1]
TEST_API_KEY = "test-key"
TEST_TIME_SCALE = 0.002


@pytest.fixture(scope="session")
def console_config() -> ConsoleConfig:
    return ConsoleConfig.load(ROOT / "console.toml")


BASIC_ENDPOINT = """
[endpoints.basic]
id = "basic-sim01"
name = "console-basic"
gpu_pools = ["ADA_24"]
workers_max = 3
"""


@pytest.fixture(scope="session")
def basic_toml() -> dict:
    """The example console.toml plus a simulator-only `basic` endpoint (not a console role)."""
    return tomllib.loads((ROOT / "console.toml").read_text(encoding="utf-8") + BASIC_ENDPOINT)


@pytest.fixture(scope="session")
def basic_config(basic_toml) -> PodConfig:
    return PodConfig.from_toml(basic_toml)


@pytest.fixture(scope="session")
def localpod(tmp_path_factory, console_config):
    pod = LocalPod(tmp_path_factory.mktemp("localpod"), console_config, api_key=TEST_API_KEY,
                   time_scale=TEST_TIME_SCALE, seed_demo=False).start()
    yield pod
    pod.stop()


@pytest.fixture
def start_localpod(tmp_path_factory, console_config):
    started: list[LocalPod] = []

    def start(config: ConsoleConfig | None = None, data_dir: Path | None = None, **kwargs) -> LocalPod:
        options = {"api_key": TEST_API_KEY, "time_scale": TEST_TIME_SCALE, "seed_demo": False,
                   **kwargs}
        pod = LocalPod(data_dir or tmp_path_factory.mktemp("localpod"), config or console_config,
                       **options).start()
        started.append(pod)
        return pod

    yield start
    for pod in started:
        pod.stop()


@pytest.fixture
def fresh_localpod(start_localpod) -> LocalPod:
    return start_localpod()
