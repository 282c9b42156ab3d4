"""What a warm hold (raised min workers) costs, said before an operator confirms it: a min worker is
billed at the endpoint's active rate for every second it is kept, whether or not a job arrives."""
from __future__ import annotations

from dataclasses import dataclass

from lib.config import ConsoleConfig


@dataclass(frozen=True)
class HoldCost:
    workers: int
    minutes: float
    per_worker_hour_usd: float
    total_usd: float

    def lines(self) -> list[str]:
        return [f"{self.workers} worker(s) stay on for {self.minutes:g} min, busy or not.",
                (f"About ${self.total_usd:,.2f} at the active rate (${self.per_worker_hour_usd:,.2f} per "
                 "worker-hour), billed even if no job arrives."),
                "After the hold, min workers go back to the current value and idle workers stop."]


def hold_cost(config: ConsoleConfig, role: str, *, workers: int, minutes: float) -> HoldCost:
    per_second = config.price_per_second(role, active=True)
    return HoldCost(workers=workers, minutes=minutes, per_worker_hour_usd=per_second * 3600,
                    total_usd=per_second * workers * minutes * 60)
