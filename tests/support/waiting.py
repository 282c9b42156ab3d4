"""Waiting on a condition instead of sleeping a fixed time: a loaded 2-core machine stretches every
timing, so a test waits until what it needs is true (or the timeout says what never happened)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_s: float = 10.0, what: str = "condition",
               interval_s: float = 0.01) -> T:
    """Call `condition` until it returns something truthy and return that; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
