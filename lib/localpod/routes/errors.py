"""The simulator's two error shapes: the job API's {"error": ...} and REST v2's problem+json.

Job-API errors are `{"error": "..."}` (RunPod does not document its error bodies, reference
runpod-api.md §6.1); REST errors are RFC 9457 problem+json like REST v2.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response


class ApiError(Exception):
    """A job-API or admin error: JSON body {"error": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Problem(Exception):
    """A REST v2 error: application/problem+json {title, status, detail}."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}

    def response(self, extra_headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps({"title": self.title, "status": self.status, "detail": self.detail}),
                        status_code=self.status, media_type="application/problem+json",
                        headers={**(extra_headers or {}), **self.headers})


async def json_object(request: Request, fail: Callable[[str], Exception]) -> dict:
    """The request body as a JSON object; otherwise raises fail(reason)."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise fail("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise fail("the body must be a JSON object")
    return body
