"""The console started with a minimal console.toml against a doc-exact RunPod stand-in: every page
renders, a role left out says how to add it, and nothing crashes."""
from __future__ import annotations

import pytest

from lib.config import Settings
from tests.realpod.conftest import minimal_config
from tests.realpod.steps import everything_shown, open_page

PAGES = ["pages/overview.py", "pages/jobs.py", "pages/endpoints.py", "pages/models.py", "pages/costs.py",
         "pages/generate.py", "pages/gallery.py", "pages/special.py", "pages/datasets.py", "pages/training.py",
         "pages/audit.py", "pages/provisioning.py", "pages/connection.py"]
ROLE_PAGES = {"image": "pages/generate.py", "special": "pages/special.py", "training": "pages/training.py"}


@pytest.fixture
def start_console(standin, write_config, tmp_path, serve_console):
    def _start(text: str, *, s3_key: bool = True):
        env = {k: v for k, v in standin.console_env().items() if s3_key or not k.startswith("RUNPOD_S3_")}
        env.update(CONSOLE_CONFIG=str(write_config(text)), CONSOLE_DATA=str(tmp_path / "data"))
        return serve_console(Settings.from_env(env))
    return _start


# The second is the new user: RUNPOD_API_KEY set, no S3 key yet, no training endpoint.
@pytest.fixture(params=[(("image", "training", "special"), True), (("image",), False)],
                ids=["all-roles", "image-only-without-s3-key"])
def console(request, start_console):
    roles, s3_key = request.param
    return roles, start_console(minimal_config(roles), s3_key=s3_key)


def test_every_page_renders_with_a_minimal_file(console):
    roles, _ = console
    shown = {page: everything_shown(open_page(page)) for page in PAGES}  # open_page fails on any exception
    for role, page in ROLE_PAGES.items():
        if role in roles:
            assert "is not configured" not in shown[page], page
        else:
            assert f"The {role} endpoint is not configured" in shown[page], page
            assert f"[endpoints.{role}]" in shown[page], f"{page} says how to add it"
    if len(roles) == 1:  # no S3 key: the volume pages say which keys to set
        assert "RUNPOD_S3_ACCESS_KEY" in shown["pages/models.py"]
        assert "RUNPOD_S3_ACCESS_KEY" in shown["pages/datasets.py"]


def test_overview_shows_the_live_queues(console):
    roles, _ = console
    at = open_page("pages/overview.py")
    values = [m.value for m in at.metric if m.label == "In queue"]
    assert "3" in values  # the stand-in's image endpoint has 3 waiting jobs
    assert len(values) == len(roles)


def test_a_pool_without_a_price_is_a_warning_on_costs(start_console):
    start_console(minimal_config(("image",)) + 'gpu_pools = ["ADA_32_PRO"]\n')
    at = open_page("pages/costs.py")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("No price for pool ADA_32_PRO: costs for the image endpoint are not estimated" in w
               for w in warnings), warnings
