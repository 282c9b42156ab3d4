"""One fake clock for code that takes `clock`/`sleep` callables: time moves only when the code
sleeps or the test advances it, so retry pauses and timeouts are checked without waiting."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Generic, TypeVar

Instant = TypeVar("Instant", float, datetime)


class FakeClock(Generic[Instant]):
    """Starts at `start`: seconds as a float (a monotonic clock) or a datetime (a wall clock).

    Pass `clock.now` as the clock and `clock.sleep` as the sleep; `sleeps` lists every pause asked for.
    """

    def __init__(self, start: Instant = 1000.0):  # type: ignore[assignment]
        self.start: Instant = start
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> Instant:
        if isinstance(self.start, datetime):
            return self.start + timedelta(seconds=self.elapsed)
        return self.start + self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds

    def advance(self, seconds: float = 0.0, **units: float) -> None:
        """Move time on without a sleep: `advance(5)` or `advance(minutes=4)`."""
        self.elapsed += seconds + timedelta(**units).total_seconds()
