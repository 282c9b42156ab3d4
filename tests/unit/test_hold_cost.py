"""The price of a warm hold, shown before Raise min workers is confirmed (lib/ops/hold_cost.py)."""
from lib.config import ConsoleConfig
from lib.ops.hold_cost import hold_cost


def test_a_hold_costs_workers_times_minutes_at_the_active_rate():
    config = ConsoleConfig.load("console.toml")
    cost = hold_cost(config, "image", workers=2, minutes=30)
    per_second = config.price_per_second("image", active=True)
    assert cost.total_usd == per_second * 2 * 30 * 60
    assert cost.per_worker_hour_usd == per_second * 3600
    assert f"${cost.total_usd:,.2f}" in " ".join(cost.lines())
