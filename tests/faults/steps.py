"""Shared pieces of the fault tests."""
from __future__ import annotations

import time

from lib.auth import LOCAL_OPERATOR

USER = LOCAL_OPERATOR.email


def wait_until(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
