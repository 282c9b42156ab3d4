"""Costs in Chromium on the simulator's 30 days of seeded traffic and billing, one section at a time:
spend by endpoint, cost per image, the reconciliation and the pod comparison with its break-even, a
screenshot for stakeholders, and a CSV export."""
import csv
import io
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import open_page, screenshot

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)   # a Streamlit run on two busy cores can take a few seconds

ENDPOINTS = ("console-image", "console-special", "console-training")
MONEY = r"\$[\d,]+(\.\d+)?"


def chart(page, title: str):
    return page.get_by_test_id("stPlotlyChart").filter(has=page.locator(".gtitle", has_text=title))


def section(page, wait_idle, name: str) -> None:
    """Open one section of the report (only the open one is drawn)."""
    page.get_by_role("tab", name=name, exact=True).click()
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")
    wait_idle(page)


def set_operator_hours(page, wait_idle, hours: str, rate: str) -> None:
    for name, value in (("Operator hours per month a pod needs", hours), ("Operator cost per hour (USD)", rate)):
        box = page.get_by_role("spinbutton", name=name)
        box.fill(value)
        box.press("Enter")
        wait_idle(page)


def test_costs_report_on_seeded_traffic_with_csv_export(console_page, wait_idle, tmp_path):
    page = console_page
    open_page(page, wait_idle, "Costs", "Costs")
    expect(page.get_by_text("Simulated data: 30 days of seeded traffic")).to_be_visible()
    headline = page.get_by_test_id("stMetric")
    expect(headline.filter(has_text="Spend in range").get_by_test_id("stMetricValue")).to_have_text(re.compile(MONEY))
    expect(headline.filter(has_text="Cost per image").get_by_test_id("stMetricValue")).to_have_text(
        re.compile(r"^\$0\.0\d+$"))   # roughly the $0.01–0.02 per image the move to serverless promised

    spend = chart(page, "Spend by endpoint")
    for name in ENDPOINTS:
        expect(spend.locator(".legendtext", has_text=name)).to_have_count(1)
    section(page, wait_idle, "Per job and image")
    by_endpoint = page.get_by_role("tabpanel", name="By endpoint").get_by_test_id("stDataFrame")
    for name in ENDPOINTS:
        expect(by_endpoint.locator("td").filter(has=page.get_by_text(name, exact=True))).to_have_count(1)
    expect(chart(page, "Cost per image by workload")).to_have_count(1)

    section(page, wait_idle, "Estimates vs billed")
    expect(page.get_by_role("heading", name="Estimates vs billed")).to_be_visible()
    expect(chart(page, "Estimates vs billed, per day")).to_have_count(1)
    reconciled = re.compile(rf"RunPod billed {MONEY}; the per-job estimates add up to {MONEY}")
    expect(page.get_by_text(reconciled)).to_be_visible()

    section(page, wait_idle, "Serverless vs pod")
    expect(page.get_by_role("heading", name="Serverless vs a dedicated pod (last 30 days)")).to_be_visible()
    expect(chart(page, "Monthly cost of each option")).to_have_count(1)
    break_even = chart(page, "Serverless vs dedicated pod")
    expect(break_even.locator(".xtitle")).to_have_text("images per month")
    expect(page.get_by_text(re.compile(r"Serverless costs as much as the pod \(\$[\d,]+/month\) at [\d,]+ images a "
                                       r"month; at [\d,]+ images a month now (serverless|the pod) is cheaper\."))
           ).to_be_visible()
    screenshot(page, wait_idle, "costs.png")
    versus_pod = headline.filter(has_text="Serverless per month").get_by_test_id("stMetricDelta")
    pod_alone = versus_pod.inner_text()
    set_operator_hours(page, wait_idle, "10", "50")
    expect(versus_pod).not_to_have_text(pod_alone)
    pod_with_an_operator = versus_pod.inner_text()

    section(page, wait_idle, "Download")
    expect(page.get_by_role("spinbutton", name="Operator hours per month a pod needs")).to_have_count(0)
    expect(versus_pod).to_have_text(pod_with_an_operator)   # kept while their section is closed
    section(page, wait_idle, "Serverless vs pod")
    expect(page.get_by_role("spinbutton", name="Operator hours per month a pod needs")).to_have_value("10.00")
    set_operator_hours(page, wait_idle, "0", "0")   # the other flows compare with a pod alone

    section(page, wait_idle, "Download")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Cost by endpoint").click()
    download = download_info.value
    assert re.fullmatch(r"costs-by-endpoint-\d{8}-\d{8}\.csv", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert {r["endpoint"] for r in rows} == set(ENDPOINTS)
    assert sum(float(r["cost_usd"]) for r in rows) > 0
