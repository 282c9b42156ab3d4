"""Typed errors of the RunPod client.

Every message names the operation ("GET /status/abc on endpoint img-1"), says what went wrong
and what to do. Messages, bodies and reprs never carry the API key: whatever RunPod echoes back
is scrubbed before it is stored (see ``lib.runpod.http``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lib.runpod.models import Job

MB = 1_000_000


class RunPodError(Exception):
    """Base of every error raised by lib.runpod.

    ``outcome_unknown`` is True when a submission (/run, /runsync, /retry) may or may not have
    reached RunPod: the caller must record the job as "unknown" instead of resubmitting blindly.
    """

    def __init__(self, message: str, *, operation: str | None = None, outcome_unknown: bool = False):
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        return self.message


class ConnectionFailed(RunPodError):
    """RunPod (or the dev worker) could not be reached, or the connection broke mid-request."""


class RequestTimeout(RunPodError):
    """No answer within the read/write timeout."""


class PayloadTooLarge(RunPodError):
    def __init__(self, size: int, limit: int, *, operation: str | None = None, route: str = "/run"):
        self.size = size
        self.limit = limit
        message = (f"request body is {size / MB:.1f} MB; RunPod accepts at most {limit / MB:.1f} MB on "
                   f"{route} — downscale the images or upload them to the network volume and pass "
                   f"their paths instead")
        if operation:
            message = f"{operation}: {message}"
        super().__init__(message, operation=operation)


class BadResponse(RunPodError):
    """A 2xx answer that is not the JSON we expect (not JSON, truncated, wrong types)."""


class Unsupported(RunPodError):
    """The operation does not exist on this backend (e.g. cancel on a dev worker)."""


class JobWaitTimeout(RunPodError):
    """wait()/run_and_wait() reached its deadline; ``job`` is the last state seen (None if none)."""

    def __init__(self, message: str, job: Job | None, *, operation: str | None = None):
        super().__init__(message, operation=operation)
        self.job = job


class StatusError(RunPodError):
    """RunPod answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, body: object = None, request_id: str | None = None,
                 operation: str | None = None, outcome_unknown: bool = False):
        super().__init__(message, operation=operation, outcome_unknown=outcome_unknown)
        self.status = status
        self.body = body
        self.request_id = request_id


class BadRequest(StatusError):
    """400 / 422: RunPod rejected the request as malformed."""


class AuthError(StatusError):
    """401 (key rejected) / 403 (key lacks access)."""


class NotFound(StatusError):
    """404: unknown endpoint/resource, or a job whose result expired."""


class RateLimited(StatusError):
    """429: ``retry_after`` is the server's wait in seconds when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(StatusError):
    """5xx: RunPod (or the worker behind it) failed."""
