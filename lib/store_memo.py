"""Expensive reads of the job store, computed once and reused until the store changes.

A page run must not re-read thousands of job rows when nothing was written since the last run:
the key is the store's write counter (JobStore.version), plus an age limit for results that also
depend on the clock (a "last 30 days" window)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_entries: dict[tuple[int, Hashable], tuple[int, float, object]] = {}


def memo(store, key: Hashable, compute: Callable[[], T], *, max_age_s: float = 60.0) -> T:
    """compute() for this store and key, or the stored result if the store has not changed since
    and it is younger than max_age_s. Concurrent misses may compute twice; both results are equal."""
    version, now = store.version(), time.monotonic()
    slot = (id(store), key)
    with _lock:
        hit = _entries.get(slot)
    if hit is not None and hit[0] == version and now - hit[1] < max_age_s:
        return hit[2]  # type: ignore[return-value]
    value = compute()
    with _lock:
        _entries[slot] = (version, now, value)
    return value
