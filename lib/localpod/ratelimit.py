"""Rate limits: the job API's per-endpoint sliding windows and the REST API's quotas."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# Reference §1.7: requests per 10 s per endpoint. /health and /retry have no published limit.
# The "concurrent" column and the dynamic max(base, running_workers x requests_per_worker)
# are not simulated: requests_per_worker is unpublished, so the base limit is the safe floor.
JOB_API_LIMITS = {"run": 1000, "runsync": 2000, "status": 2000, "stream": 2000,
                  "cancel": 100, "purge-queue": 2}
WINDOW_S = 10.0


def take(hits: deque, limit: int, now: float) -> int | None:
    """Count one request in a sliding 10 s window; None if allowed, else Retry-After seconds."""
    cutoff = now - WINDOW_S
    while hits and hits[0] <= cutoff:
        hits.popleft()
    if len(hits) >= limit:
        return max(1, math.ceil(hits[0] + WINDOW_S - now))
    hits.append(now)
    return None


@dataclass
class RestQuota:
    """Fixed-window quotas of the REST API with the RFC-draft headers REST v2 sends.

    The REST v2 spec's numbers (60/minute, 3000/hour, 50000/day) are examples, not promised
    quotas (reference §3.2); the simulator allows more per minute so that a console page that
    loads several views at once is not throttled, and tests can lower it (PUT /admin/settings).
    """

    per_minute: int = 600
    per_hour: int = 20_000
    per_day: int = 200_000
    _used: dict[str, tuple[int, int]] = field(default_factory=dict)

    def _windows(self) -> tuple[tuple[str, int, int], ...]:
        return (("minute", self.per_minute, 60), ("hour", self.per_hour, 3600),
                ("day", self.per_day, 86_400))

    def take(self, now: float) -> tuple[int | None, dict[str, str]]:
        """Count one request; (Retry-After seconds or None, RateLimit headers)."""
        state = []
        retry_after = None
        for name, quota, width in self._windows():
            start = int(now // width) * width
            prev_start, used = self._used.get(name, (start, 0))
            if prev_start != start:
                used = 0
            reset = max(1, math.ceil(start + width - now))
            if used >= quota:
                retry_after = max(retry_after or 0, reset)
            state.append((name, quota, width, start, used, reset))
        if retry_after is None:
            for name, _q, _w, start, used, _r in state:
                self._used[name] = (start, used + 1)
        headers = {
            "RateLimit": ", ".join(
                f'"{name}";r={max(0, quota - used - (0 if retry_after else 1))};t={reset}'
                for name, quota, _w, _s, used, reset in state),
            "RateLimit-Policy": ", ".join(f'"{name}";q={quota};w={width}'
                                          for name, quota, width in self._windows()),
        }
        return retry_after, headers
