"""The one pooled httpx.Client behind every RunPod call: auth, timeouts, retries, error mapping.

Retries live here and nowhere else. What may be retried depends on what a repeat could do:

* ``Retry.IDEMPOTENT`` (GET status/stream/health, REST GETs, PATCH with the same body): on
  408/429/5xx and on any transport failure, since repeating cannot change anything.
* ``Retry.MUTATE`` (cancel, purge-queue): on 408/429/5xx and when the connection was never made.
* ``Retry.SUBMIT`` (/run, /runsync, /retry): only when the request surely did not reach RunPod
  (connect error / connect timeout / no free pooled connection) or RunPod refused it with 429/503.
  After a read timeout, a broken connection or another 5xx the job may exist: we raise with
  ``outcome_unknown=True`` instead of risking a duplicate GPU job.
"""
from __future__ import annotations

import email.utils
import enum
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

import httpx

from lib.runpod.errors import (
    AuthError,
    BadRequest,
    BadResponse,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    RunPodError,
    ServerError,
    StatusError,
)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Hundreds of jobs are tracked at once and each poll holds a connection for one round trip.
DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0)
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
_EXCERPT = 300


class Retry(enum.Enum):
    IDEMPOTENT = "idempotent"
    MUTATE = "mutate"
    SUBMIT = "submit"


# The request never left this machine: safe to repeat whatever it was.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Hints:
    """What the error messages of one call should say beyond the status."""

    not_found: str = "not found — check the id"
    body_size: int | None = None     # for a 413: the size we sent …
    body_limit: int | None = None    # … and RunPod's documented limit for the route
    route: str = ""


class Gate(Protocol):
    """Per-API throttle consulted before each attempt and fed every response (REST RateLimit)."""

    def before(self, operation: str) -> None: ...

    def observe(self, response: httpx.Response) -> None: ...


class Scrubber:
    """Removes the API key from anything RunPod echoes back before it lands in a message or body."""

    def __init__(self, secret: str):
        self._secret = secret

    def text(self, value: str) -> str:
        return value.replace(self._secret, "***") if self._secret else value

    def data(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def parse_retry_after(headers: httpx.Headers, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, then Retry-After as seconds or HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        value = when.timestamp() - now()
        return max(value, 0.0)
    return value if value >= 0 else None


def request_id_of(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id") or response.headers.get("request-id") or None


# What httpx accepts as query values.
QueryParams = Mapping[str, str | int | float | bool | None]


class _StatusFields(TypedDict):
    """The keyword arguments every StatusError subclass takes from the response."""

    status: int
    body: object
    request_id: str | None
    operation: str


class HttpCore:
    """Thread-safe: the httpx.Client pools connections across threads; no other state is mutated."""

    def __init__(self, api_key: str, *, timeout: httpx.Timeout | None, limits: httpx.Limits | None,
                 max_retries: int, retry_cap_s: float, transport: httpx.BaseTransport | None,
                 sleep: Callable[[float], None], clock: Callable[[], float],
                 event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None):
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._auth = f"Bearer {api_key}" if api_key else None
        self.scrub = Scrubber(api_key)
        self.max_retries = max_retries
        self.retry_cap_s = retry_cap_s
        self.sleep = sleep
        self.clock = clock
        self.timeout = timeout or DEFAULT_TIMEOUT
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self.client = httpx.Client(
            timeout=self.timeout,
            limits=limits or DEFAULT_LIMITS,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "serverless-console/0.1", "Accept": "application/json"},
            event_hooks=dict(event_hooks or {}),
        )

    def close(self) -> None:
        self.client.close()

    def timeout_with_read(self, read_s: float | None) -> httpx.Timeout:
        """The default budgets with a longer read timeout (runsync, dev worker /status)."""
        t = self.timeout
        return httpx.Timeout(connect=t.connect, read=read_s, write=t.write, pool=t.pool)

    def backoff(self, attempt: int) -> float:
        with self._rng_lock:
            jitter = 1.0 - 0.25 * self._rng.random()
        return min(INITIAL_RETRY_DELAY_S * 2.0 ** attempt, MAX_RETRY_DELAY_S) * jitter

    def request(self, method: str, url: str, *, operation: str, retry: Retry,
                body: bytes | None = None, params: QueryParams | None = None,
                auth: bool = True, timeout: httpx.Timeout | None = None, hints: Hints = Hints(),
                gate: Gate | None = None) -> object:
        """Send with retries and return the decoded JSON body (None for an empty 204)."""
        headers = {}
        if auth and self._auth:
            headers["Authorization"] = self._auth
        if body is not None:
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            if gate is not None:
                gate.before(operation)
            try:
                request = self.client.build_request(method, url, content=body, params=params,
                                                    headers=headers, timeout=timeout or self.timeout)
                response = self.client.send(request)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                if attempt < self.max_retries and self._retry_transport(retry, exc):
                    self.sleep(self.backoff(attempt))
                    attempt += 1
                    continue
                raise self._transport_error(exc, operation, retry) from exc
            if gate is not None:
                gate.observe(response)
            if response.is_success:
                try:
                    return self._decode(response, operation)
                except BadResponse as exc:
                    # A 2xx means the request reached RunPod: a submission may have created the job.
                    exc.outcome_unknown = retry is Retry.SUBMIT
                    raise
            error = self._status_error(response, operation, retry, hints)
            response.close()  # before sleeping: a failed attempt must not pin a pooled connection
            delay = self._status_retry_delay(response, retry, attempt)
            if delay is None:
                raise error
            self.sleep(delay)
            attempt += 1

    # ---------------------------------------------------------------- retry decisions

    @staticmethod
    def _retry_transport(retry: Retry, exc: Exception) -> bool:
        if isinstance(exc, _NOT_SENT):
            return True
        if retry is Retry.IDEMPOTENT:
            return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))
        return False

    def _status_retry_delay(self, response: httpx.Response, retry: Retry, attempt: int) -> float | None:
        status = response.status_code
        if retry is Retry.SUBMIT:
            retryable = status in (429, 503)
        else:
            retryable = status in (408, 429) or status >= 500
        if not retryable:
            return None
        server_wait = parse_retry_after(response.headers)
        if server_wait is not None and server_wait > self.retry_cap_s:
            return None  # e.g. RateLimited with .retry_after: the UI says when to come back
        if attempt >= self.max_retries:
            return None
        return server_wait if server_wait is not None else self.backoff(attempt)

    # ---------------------------------------------------------------- mapping

    def _decode(self, response: httpx.Response, operation: str) -> object:
        if not response.content:
            if response.status_code == 204:
                return None
            raise BadResponse(f"{operation}: RunPod answered HTTP {response.status_code} with an empty body "
                              f"— try again; if it persists the service is misbehaving", operation=operation)
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            excerpt = self.scrub.text(response.text)[:_EXCERPT]  # scrub first: a cut could split the key
            raise BadResponse(
                f"{operation}: RunPod answered HTTP {response.status_code} with a body that is not valid "
                f"JSON (truncated or not JSON: {excerpt!r}) — try again; if it persists check the API URL",
                operation=operation) from None

    def _transport_error(self, exc: Exception, operation: str, retry: Retry) -> RunPodError:
        unknown = retry is Retry.SUBMIT and not isinstance(exc, _NOT_SENT)
        tail = (" — the job may or may not have been created: check the endpoint's queue before "
                "submitting again") if unknown else ""
        detail = self.scrub.text(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return ConnectionFailed(f"{operation}: timed out connecting ({detail}) — check the network "
                                    f"and the API URL", operation=operation)
        if isinstance(exc, httpx.PoolTimeout):
            return RequestTimeout(f"{operation}: no free connection in the pool in time — too many "
                                  f"requests in flight; try again", operation=operation)
        if isinstance(exc, httpx.TimeoutException):
            return RequestTimeout(f"{operation}: no answer in time ({type(exc).__name__}){tail or ' — try again'}",
                                  operation=operation, outcome_unknown=unknown)
        if isinstance(exc, httpx.ConnectError):
            return ConnectionFailed(f"{operation}: cannot connect ({detail}) — check the network and the "
                                    f"API URL", operation=operation)
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return ConnectionFailed(f"{operation}: invalid URL ({detail}) — the URL must start with "
                                    f"http:// or https://", operation=operation)
        return ConnectionFailed(f"{operation}: the connection failed ({type(exc).__name__}: {detail})"
                                f"{tail or ' — try again'}", operation=operation, outcome_unknown=unknown)

    def _status_error(self, response: httpx.Response, operation: str, retry: Retry,
                      hints: Hints) -> RunPodError:
        status = response.status_code
        body = self._error_body(response)
        detail = _detail(body)
        said = f" ({detail})" if detail else ""
        rid = request_id_of(response)
        common = _StatusFields(status=status, body=body, request_id=rid, operation=operation)
        ref = f" [request id {rid}]" if rid else ""
        if status == 413:
            size = hints.body_size if hints.body_size is not None else len(response.request.content or b"")
            limit = hints.body_limit if hints.body_limit is not None else size
            return PayloadTooLarge(size, limit, operation=operation, route=hints.route or "this route")
        if status in (400, 422):
            return BadRequest(f"{operation}: RunPod rejected the request (HTTP {status}){said} — fix the "
                              f"input or settings and try again{ref}", **common)
        if status == 401:
            return AuthError(f"{operation}: the API key was rejected (HTTP 401){said} — check "
                             f"RUNPOD_API_KEY{ref}", **common)
        if status == 403:
            return AuthError(f"{operation}: the API key lacks access (HTTP 403){said} — give the key "
                             f"read-write access to this resource in RunPod's API key settings{ref}", **common)
        if status == 404:
            return NotFound(f"{operation}: {hints.not_found}{said}{ref}", **common)
        if status == 429:
            wait = parse_retry_after(response.headers)
            when = f"retry in {wait:.0f} s" if wait is not None else "wait a little and retry"
            return RateLimited(f"{operation}: rate limited by RunPod (HTTP 429){said} — {when}{ref}",
                               retry_after=wait, **common)
        # 408 and 5xx other than 503 may come after RunPod accepted the job.
        unknown = retry is Retry.SUBMIT and (status == 408 or (status >= 500 and status != 503))
        tail = (" — the job may or may not have been created: check the endpoint's queue before "
                "submitting again") if unknown else ""
        if status >= 500:
            tail = tail or " — RunPod or the worker failed; try again later"
            return ServerError(f"{operation}: server error (HTTP {status}){said}{tail}{ref}",
                               outcome_unknown=unknown, **common)
        return StatusError(f"{operation}: unexpected HTTP {status}{said}{tail}{ref}",
                           outcome_unknown=unknown, **common)

    def _error_body(self, response: httpx.Response) -> object:
        try:
            data = json.loads(response.content) if response.content else None
        except (ValueError, UnicodeDecodeError):
            return self.scrub.text(response.text)[:_EXCERPT]
        return self.scrub.data(data)


def _detail(body: object) -> str:
    """The human part of an error body: problem+json title/detail, or error/message, or the text."""
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
        if not parts:
            parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
        errors = body.get("errors")
        if errors:
            parts.append(json.dumps(errors, ensure_ascii=False)[:200])
        text = ": ".join(parts)
    elif body is None:
        text = ""
    else:
        text = str(body)
    return text[:_EXCERPT]


def dump_json(value: object, what: str) -> bytes:
    """Compact UTF-8 JSON, serialised once so the size check and the request see the same bytes."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: the body is not JSON-serialisable ({exc}) — pass only dicts, lists, "
                        f"strings, numbers, booleans and None") from None
