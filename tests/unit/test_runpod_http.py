"""Error mapping, retry policy, Retry-After handling and connection hygiene of the shared client."""
from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from lib.runpod import (
    AuthError,
    BadRequest,
    BadResponse,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    RunPod,
    RunPodError,
    ServerError,
    StatusError,
)
from lib.runpod.http import parse_retry_after
from tests.support.fakes import KEY, recording_runpod


def respond(status, **kw):
    return lambda request: httpx.Response(status, **kw)


def raising(exc_type):
    def handler(request):
        raise exc_type("boom", request=request)
    return handler


# ---------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize("status, body, error, fragment", [
    (400, {"error": "input is required"}, BadRequest, "RunPod rejected the request (HTTP 400) (input is required)"),
    (422, {"title": "Unprocessable Entity", "detail": "bad field"}, BadRequest, "Unprocessable Entity: bad field"),
    (401, {"error": "Unauthorized"}, AuthError, "the API key was rejected (HTTP 401)"),
    (403, {"error": "forbidden"}, AuthError, "lacks access (HTTP 403)"),
    (404, None, NotFound, "the job is gone"),
    (413, {"error": "too big"}, PayloadTooLarge, "RunPod accepts at most 10.0 MB on /run"),
    (409, {"error": "conflict"}, StatusError, "unexpected HTTP 409"),
])
def test_client_error_mapping(status, body, error, fragment):
    client, seen, _ = recording_runpod(respond(status, json=body) if body else respond(status))
    call = (lambda e: e.status("j")) if status == 404 else (lambda e: e.run({"a": 1}))
    with pytest.raises(error) as info:
        call(client.endpoint("img-1"))
    assert fragment in str(info.value)
    assert str(info.value).startswith(("POST /run on endpoint img-1", "GET /status/j on endpoint img-1"))
    assert len(seen) == 1  # never retried
    if isinstance(info.value, StatusError):
        assert info.value.status == status and info.value.body == body


def test_413_carries_sent_size_and_route_limit():
    client, _, _ = recording_runpod(respond(413))
    with pytest.raises(PayloadTooLarge) as info:
        client.endpoint("e").runsync({"x": "y" * 100})
    assert info.value.limit == 20_000_000 and info.value.size > 100


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors(status):
    client, seen, _ = recording_runpod(respond(status, text="upstream failed"), max_retries=2)
    with pytest.raises(ServerError) as info:
        client.endpoint("e").health()
    assert info.value.status == status and "upstream failed" in str(info.value)
    assert len(seen) == 3


@pytest.mark.parametrize("content, fragment", [
    (b"<html>gateway</html>", "not valid JSON"),
    (b'{"id": "j", "status": "COMPL', "not valid JSON"),
    (b"", "empty body"),
])
def test_bad_2xx_bodies(content, fragment):
    client, _, _ = recording_runpod(respond(200, content=content))
    with pytest.raises(BadResponse, match=fragment):
        client.endpoint("e").status("j")


def test_request_id_kept():
    client, _, _ = recording_runpod(respond(500, json={"error": "x"}, headers={"x-request-id": "req-42"}),
                                    max_retries=0)
    with pytest.raises(ServerError) as info:
        client.endpoint("e").status("j")
    assert info.value.request_id == "req-42" and "req-42" in str(info.value)


@pytest.mark.parametrize("exc, error", [
    (httpx.ConnectError, ConnectionFailed), (httpx.ConnectTimeout, ConnectionFailed),
    (httpx.ReadTimeout, RequestTimeout), (httpx.WriteTimeout, RequestTimeout), (httpx.PoolTimeout, RequestTimeout),
    (httpx.ReadError, ConnectionFailed), (httpx.RemoteProtocolError, ConnectionFailed),
    (httpx.UnsupportedProtocol, ConnectionFailed),
])
def test_transport_errors_never_escape_raw(exc, error):
    client, _, _ = recording_runpod(raising(exc), max_retries=1)
    with pytest.raises(error) as info:
        client.endpoint("e").status("j")
    assert isinstance(info.value.__cause__, exc)
    assert not isinstance(info.value, httpx.HTTPError)
    assert "GET /status/j on endpoint e" in str(info.value)


# ---------------------------------------------------------------------------- API key never shown


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
def test_key_scrubbed_from_echoed_bodies(status):
    body = {"error": f"bad key Bearer {KEY}", "echo": {"authorization": KEY}}
    client, _, _ = recording_runpod(respond(status, json=body), max_retries=0)
    with pytest.raises(RunPodError) as info:
        client.endpoint("e").status("j")
    err = info.value
    for text in (str(err), repr(err), repr(err.body), repr(err.__dict__)):
        assert KEY not in text
    assert "***" in str(err)


def test_key_scrubbed_from_non_json_bodies():
    client, _, _ = recording_runpod(respond(200, text=f"oops {KEY}"))
    with pytest.raises(BadResponse) as info:
        client.endpoint("e").status("j")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


# ---------------------------------------------------------------------------- retry policy


def flaky(first, then=None):
    """First answer(s) from `first`, then a success."""
    state = {"n": 0}
    firsts = first if isinstance(first, list) else [first]

    def handler(request):
        state["n"] += 1
        if state["n"] <= len(firsts):
            item = firsts[state["n"] - 1]
            if isinstance(item, type) and issubclass(item, Exception):
                raise item("boom", request=request)
            return item
        return then or httpx.Response(200, json={"id": "j", "status": "IN_QUEUE",
                                                 "jobs": {}, "workers": {}, "removed": 0})
    return handler


READ_CALLS = {
    "status": lambda e: e.status("j"),
    "stream": lambda e: e.stream("j"),
    "health": lambda e: e.health(),
}
SUBMIT_CALLS = {
    "run": lambda e: e.run({"a": 1}),
    "runsync": lambda e: e.runsync({"a": 1}),
    "retry": lambda e: e.retry("j"),
}
MUTATE_CALLS = {
    "cancel": lambda e: e.cancel("j"),
    "purge": lambda e: e.purge_queue(),
}
FAILURES = {
    "500": httpx.Response(500), "502": httpx.Response(502), "503": httpx.Response(503),
    "408": httpx.Response(408), "429": httpx.Response(429),
    "ConnectError": httpx.ConnectError, "ConnectTimeout": httpx.ConnectTimeout,
    "ReadTimeout": httpx.ReadTimeout, "WriteError": httpx.WriteError,
}
RETRIED = {
    "read": set(FAILURES),
    "submit": {"503", "429", "ConnectError", "ConnectTimeout"},
    "mutate": {"500", "502", "503", "408", "429", "ConnectError", "ConnectTimeout"},
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("kind, name, call", [
    *[("read", n, c) for n, c in READ_CALLS.items()],
    *[("submit", n, c) for n, c in SUBMIT_CALLS.items()],
    *[("mutate", n, c) for n, c in MUTATE_CALLS.items()],
])
def test_retry_policy_table(kind, name, call, failure):
    client, seen, clock = recording_runpod(flaky(FAILURES[failure]))
    if failure in RETRIED[kind]:
        call(client.endpoint("e"))
        assert len(seen) == 2
        assert len(clock.sleeps) == 1 and 0.375 <= clock.sleeps[0] <= 0.5
    else:
        with pytest.raises(RunPodError) as info:
            call(client.endpoint("e"))
        assert len(seen) == 1 and clock.sleeps == []
        if kind == "submit":
            assert info.value.outcome_unknown
            assert "may or may not have been created" in str(info.value)


def test_submit_not_sent_is_known_outcome():
    client, seen, _ = recording_runpod(raising(httpx.ConnectError), max_retries=2)
    with pytest.raises(ConnectionFailed) as info:
        client.endpoint("e").run({"a": 1})
    assert len(seen) == 3 and not info.value.outcome_unknown


def test_backoff_grows_and_is_capped():
    client, seen, clock = recording_runpod(respond(502), max_retries=6)
    with pytest.raises(ServerError):
        client.endpoint("e").status("j")
    assert len(seen) == 7
    bases = [0.5, 1, 2, 4, 8, 8]
    for got, base in zip(clock.sleeps, bases, strict=False):
        assert 0.75 * base <= got <= base


def test_max_retries_zero_means_one_attempt():
    client, seen, clock = recording_runpod(respond(503), max_retries=0)
    with pytest.raises(ServerError):
        client.endpoint("e").status("j")
    assert len(seen) == 1 and clock.sleeps == []


# ---------------------------------------------------------------------------- Retry-After


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after": "-2"}, None),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(httpx.Headers(headers)) == expected


def test_parse_retry_after_http_date():
    assert 8 <= parse_retry_after(httpx.Headers({"retry-after": http_date(10)})) <= 10
    assert parse_retry_after(httpx.Headers({"retry-after": http_date(-100)})) == 0.0


@pytest.mark.parametrize("headers, low, high", [
    ({"retry-after": "4"}, 4, 4),
    ({"retry-after-ms": "1500"}, 1.5, 1.5),
    ("date", 4, 6),
])
def test_429_honours_retry_after(headers, low, high):
    headers = {"retry-after": http_date(6)} if headers == "date" else headers
    client, seen, clock = recording_runpod(flaky(httpx.Response(429, headers=headers)))
    client.endpoint("e").status("j")
    assert len(seen) == 2 and low <= clock.sleeps[0] <= high


@pytest.mark.parametrize("headers", [{"retry-after": "120"}, {"retry-after-ms": "45000"}, "date"])
def test_429_over_cap_raises_at_once(headers):
    headers = {"retry-after": http_date(300)} if headers == "date" else headers
    client, seen, clock = recording_runpod(respond(429, json={"error": "slow down"}, headers=headers), retry_cap_s=30)
    with pytest.raises(RateLimited) as info:
        client.endpoint("e").run({"a": 1})
    assert len(seen) == 1 and clock.sleeps == []
    assert info.value.retry_after > 30
    assert "retry in" in str(info.value) and "slow down" in str(info.value)


def test_429_without_header_exhausts_retries():
    client, seen, _ = recording_runpod(respond(429), max_retries=2)
    with pytest.raises(RateLimited) as info:
        client.endpoint("e").status("j")
    assert len(seen) == 3 and info.value.retry_after is None


# ---------------------------------------------------------------------------- connections


class TrackedStream(httpx.SyncByteStream):
    instances: list[TrackedStream] = []

    def __init__(self, data: bytes):
        self.data = data
        self.closed = False
        TrackedStream.instances.append(self)

    def __iter__(self):
        yield self.data

    def close(self):
        self.closed = True


def test_failed_attempts_close_their_responses():
    TrackedStream.instances.clear()
    closed_before_sleep = []

    def handler(request):
        return httpx.Response(503, stream=TrackedStream(b'{"error": "busy"}'))

    client, _, clock = recording_runpod(handler, max_retries=3)

    def sleep_after_checking(s):
        closed_before_sleep.append(all(x.closed for x in TrackedStream.instances))
        clock.sleep(s)
    client._core.sleep = sleep_after_checking
    with pytest.raises(ServerError):
        client.endpoint("e").status("j")
    assert len(TrackedStream.instances) == 4
    assert all(s.closed for s in TrackedStream.instances)
    assert closed_before_sleep == [True, True, True]


def test_no_pooled_connection_left_after_failed_retries():
    """Against a real socket: after exhausted retries the pool holds no active connection."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            payload = b'{"error": "down"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = RunPod(KEY, api_url=f"http://127.0.0.1:{server.server_port}/v2", max_retries=2,
                        sleep=lambda s: None)
        with pytest.raises(ServerError):
            client.endpoint("e").status("j")
        pool = client.http._transport._pool
        assert all(c.is_idle() or c.is_closed() for c in pool.connections)
        client.close()
        assert pool.connections == []
    finally:
        server.shutdown()
        server.server_close()
