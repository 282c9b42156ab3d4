"""Cost analytics: per-job costs, billed spend, reconciliation, serverless vs pod, projection.

model      the per-job cost model (job_costs) and roll-ups
billing    billed spend over time from REST v2 billing records, and its projection
reconcile  per-day per-job estimates beside billed spend, with the gap explained
options    serverless vs active workers vs a dedicated pod, break-even, scaling advice
report     the Costs page's whole analysis in one call (build_report reads the services), CSV
"""
from lib.costs.billing import (
    Projection, billing_frame, daily_spend, project_next_month, spend_over_time, volume_frame,
)
from lib.costs.model import (
    HOURS_PER_MONTH, WORKLOADS, cost_per_image, endpoint_labels, estimate_job_cost, job_costs,
    peak_concurrency, rollup,
)
from lib.costs.options import (
    BreakEven, OptionsComparison, ScalingAdvice, break_even, compare_options, recommend_scaling,
)
from lib.costs.reconcile import PARTS, reconcile
from lib.costs.report import CostAnalysis, CostReport, Metric, analyse, build_report, to_csv_bytes

__all__ = [
    "HOURS_PER_MONTH", "WORKLOADS", "PARTS", "job_costs", "estimate_job_cost", "rollup", "cost_per_image",
    "endpoint_labels", "peak_concurrency", "billing_frame", "volume_frame", "spend_over_time",
    "daily_spend", "project_next_month", "Projection", "reconcile", "compare_options",
    "OptionsComparison", "break_even", "BreakEven", "recommend_scaling", "ScalingAdvice",
    "analyse", "CostAnalysis", "to_csv_bytes", "build_report", "CostReport", "Metric",
]
