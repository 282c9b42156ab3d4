"""The API-key check, as FastAPI dependencies: one per error shape (job API and admin, REST v2)."""
from __future__ import annotations

import hmac
import time

from fastapi import Request

from lib.localpod.routes.errors import ApiError, Problem
from lib.localpod.simulator import Simulator

UNAUTHORIZED = "unauthorized: send a valid API key as 'Authorization: Bearer <key>'"


def simulator(request: Request) -> Simulator:
    return request.app.state.sim


def authorized(request: Request) -> bool:
    """A key sent `Bearer <key>` or raw; app.state.api_key None accepts any non-empty key."""
    header = request.headers.get("authorization")
    if not header:
        return False
    token = (header[7:] if header[:7].lower() == "bearer " else header).strip()
    if not token:
        return False
    api_key = request.app.state.api_key
    return api_key is None or hmac.compare_digest(token.encode(), api_key.encode())


def require_key(request: Request) -> None:
    """Job API and admin routes: 401 {"error"} without a valid key."""
    if not authorized(request):
        raise ApiError(401, UNAUTHORIZED)


def require_rest_key(request: Request) -> None:
    """REST v2 routes: 401 problem+json without a valid key, then the account's REST quota."""
    if not authorized(request):
        raise Problem(401, "Unauthorized", "missing or invalid API key; send "
                                           "'Authorization: Bearer <key>'")
    sim = simulator(request)
    retry_after, headers = sim.rest_quota.take(time.time()) if sim.rate_limits else (None, {})
    request.state.rate_headers = headers
    if retry_after is not None:
        raise Problem(429, "Too Many Requests", f"REST API rate limit reached; retry in {retry_after} s",
                      {"Retry-After": str(retry_after)})
