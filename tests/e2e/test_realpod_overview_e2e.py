"""A new user's first start against RunPod: a minimal console.toml (volume + endpoint ids) and the keys,
here against the doc-exact RunPod stand-in. The Overview shows each endpoint's live queue."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console_server import running_console, wait_idle
from tests.realpod.conftest import IDS, VOLUME, minimal_config
from tests.standin import StandIn, standard_account

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def realpod_console(tmp_path_factory):
    data = tmp_path_factory.mktemp("realpod-e2e")
    (data / "console.toml").write_text(minimal_config(("image", "special")), encoding="utf-8")
    account = standard_account({"image": IDS["image"], "special": IDS["special"]}, VOLUME)
    account.enqueue(IDS["image"], 4)
    account.enqueue(IDS["special"], 2)
    with StandIn(account) as pod, running_console(data=data, config=data / "console.toml",
                                                  env=pod.console_env()) as url:
        yield url, account


def test_overview_shows_the_live_queues_of_a_minimal_file(page, realpod_console):
    page.set_default_timeout(30_000)
    url, account = realpod_console
    page.goto(url)
    wait_idle(page)
    expect(page.get_by_text("Connected to RunPod")).to_be_visible()
    queues = page.get_by_test_id("stMetric").filter(has_text="In queue")
    expect(queues).to_have_count(2)
    # One card per endpoint in console.toml order, each with RunPod's live /health queue.
    for n, (endpoint_id, waiting) in enumerate(((IDS["image"], "4"), (IDS["special"], "2"))):
        expect(page.get_by_role("heading", name=endpoint_id)).to_be_visible()
        expect(queues.nth(n).get_by_test_id("stMetricValue")).to_have_text(waiting)
    expect(page.get_by_text("Health unavailable")).to_have_count(0)
    account.enqueue(IDS["image"], 1)  # the queue is live: the card follows RunPod's /health
    expect(queues.nth(0).get_by_test_id("stMetricValue")).to_have_text("5", timeout=20_000)
