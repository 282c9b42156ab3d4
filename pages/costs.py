"""Costs: what RunPod billed, what each job and image costs, and serverless vs a dedicated pod."""
from datetime import UTC, datetime

import streamlit as st

from lib import costs
from lib.charts import costs as charts
from lib.runpod import RunPodError
from lib.ui import dates, deps, persist, widgets

deps.require_gate()
services = deps.services()

st.title("Costs")
persist.remember("costs.op_hours", "costs.op_rate")


@st.cache_data(ttl=120, show_spinner="Adding up the costs…")
def load(_services, start: datetime, end: datetime, bucket: str, days: int, hours: float,
         rate: float) -> costs.CostReport:
    return costs.build_report(_services, start, end, bucket, days=days, operator_hours_per_month=hours,
                              operator_hourly_usd=rate)


c1, c2, c3 = st.columns([2, 1, 1])
window = dates.day_range_window("Date range (UTC)", key="costs.range", last_days=30, where=c1)
bucket = c2.radio("Spend per", ["hour", "day", "week"], index=1, horizontal=True, key="costs.bucket")
days = c3.radio("Compare over the last", [7, 30], index=1, horizontal=True, format_func=lambda d: f"{d} days",
                key="costs.days")
# The pod comparison's assumptions are drawn in its section (pod below) and kept while it is closed.
hours, rate = (st.session_state.get(key, 0.0) for key in ("costs.op_hours", "costs.op_rate"))

if window is None:
    st.stop()
now = datetime.now(UTC).replace(second=0, microsecond=0)  # a stable cache key for a minute
start, end = window[0], min(now, window[1])

try:
    report = load(services, start, end, bucket, days, hours, rate)
except (RunPodError, ValueError) as exc:
    widgets.show_error(exc, "read the billing from RunPod")
    st.stop()
analysis = report.analysis
if report.simulated:
    st.caption(":material/science: Simulated data: 30 days of seeded traffic and billing from the "
               "local simulator, priced with console.toml.")
for note in report.notes:
    st.caption(note)
for warning in services.config.price_warnings():
    st.warning(warning, icon=":material/price_change:")

for column, metric in zip(st.columns(4), report.headline, strict=False):
    column.metric(metric.label, metric.value, delta=metric.delta, delta_color=metric.delta_color,
                  help=metric.help)


def spend() -> None:
    st.subheader("Spend")
    st.plotly_chart(charts.spend_chart(analysis.spend, bucket), key="costs.spend")


def components() -> None:
    st.subheader("What the spend is made of")
    st.plotly_chart(charts.cost_split_chart(analysis.spend), key="costs.split")


def per_job() -> None:
    st.subheader("Cost per job and per image")
    # The tables take the full width: nine columns beside a chart were cut off on a laptop screen.
    tables = st.tabs(["By endpoint", "By character", "By user"])
    for tab, table in zip(tables, (analysis.by_endpoint, analysis.by_character, analysis.by_user), strict=False):
        tab.dataframe(table, hide_index=True, width="stretch", column_config={
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.2f"),
            "cost_per_image_usd": st.column_config.NumberColumn("per image", format="$%.4f"),
            "share": st.column_config.ProgressColumn("share", min_value=0.0, max_value=1.0, format="percent"),
            "billed_s": st.column_config.NumberColumn("billed s")})
    left, right = st.columns([2, 3], vertical_alignment="center")
    left.plotly_chart(charts.cost_per_image_chart(analysis.by_workload), key="costs.per_image")
    right.caption("A job costs its execution time, rounded up to the second, at its endpoint's flex price, plus "
                  "the idle timeout its worker bills before stopping when the job started that worker (a cold "
                  "start's initialization is not billed since 2026-06-29).")


def estimates() -> None:
    st.subheader("Estimates vs billed")
    st.plotly_chart(charts.reconciliation_chart(analysis.reconciliation), key="costs.reconcile")
    st.write(report.reconciliation_summary)


def pod() -> None:
    st.subheader(f"Serverless vs a dedicated pod (last {days} days)")
    a, b = st.columns(2)
    # No value= : the kept value is put back through Session State, and both start at their minimum, 0.
    a.number_input("Operator hours per month a pod needs", 0.0, 200.0, step=1.0, key="costs.op_hours")
    b.number_input("Operator cost per hour (USD)", 0.0, 500.0, step=5.0, key="costs.op_rate")
    st.caption(f"Pod price ${services.config.prices.pod_hourly_usd:.2f}/h × 730 h and serverless prices "
               f"as of {services.config.prices.as_of} come from console.toml [prices].")
    left, right = st.columns(2)
    left.plotly_chart(charts.options_chart(analysis.options), key="costs.options")
    right.plotly_chart(charts.break_even_chart(analysis.break_even), key="costs.break_even")
    st.write(analysis.break_even.summary)


def recommendations() -> None:
    st.subheader("Recommendations")
    for advice in analysis.advice:
        icon = ":material/tune:" if advice.changes else ":material/check_circle:"
        st.markdown(f"{icon} **{advice.endpoint}** — min workers {advice.min_workers}, idle timeout "
                    f"{advice.idle_timeout_s} s. {advice.reason}")


def next_month() -> None:
    st.subheader("Next month")
    st.plotly_chart(charts.projection_chart(analysis.projection), key="costs.projection")


def downloads() -> None:
    st.subheader("Download")
    for column, (label, (name, data)) in zip(st.columns(4) * 2, report.downloads().items(), strict=False):
        column.download_button(label, data, file_name=name, mime="text/csv", on_click="ignore",
                               icon=":material/download:", key=f"costs.csv.{label}")


# One section at a time: a visit redrew seven charts and three tables (1.95 s per visit with a year of
# history, bench/bench_pages.py). One chart per section where it can be: each Plotly chart is 0.06–0.08 s
# of every redraw in the browser.
widgets.lazy_tabs({"Spend": spend, "Components": components, "Per job and image": per_job,
                   "Estimates vs billed": estimates, "Serverless vs pod": pod, "Recommendations": recommendations,
                   "Next month": next_month, "Download": downloads}, key="costs.section")
