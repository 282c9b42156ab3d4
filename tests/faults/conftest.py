"""Fixtures of the fault suite: a private simulator per test, its admin API, a tracker on a
private store, and a TCP proxy that can break chosen requests on the wire.

- `pod`          a fresh LocalPod whose config adds [endpoints.basic] (id "basic-sim01", one
                 worker at most), so its jobs run localpod's configurable `basic` handler.
- `admin`        helpers over the simulator's admin routes: faults(), settings(), jobs().
- `client`       a RunPod client on the simulator whose retry sleeps are recorded, not slept.
- `make_tracker` make_tracker(client or endpoint double): Tracker(store in tmp_path) with a fast poll
                 schedule; on a client it follows jobs on the endpoint they were sent to, a double
                 serves every role; extra keyword arguments go to Tracker.
- `console_settings` Settings of a console in RunPod mode (API key set) pointed at `pod`, with
                 CONSOLE_DATA and CONSOLE_CONFIG in tmp_path: build_services(console_settings,
                 config=fault_config) (the file has a `basic` endpoint, which only the simulator takes)
                 builds what a console process has.
- `proxy`        a WireProxy in front of the simulator (see its docstring).
"""
from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lib.config import ConsoleConfig, Secret, Settings
from lib.localpod.server import LocalPod
from lib.runpod import RunPod
from lib.services import jobs_at
from lib.store import JobStore
from lib.tracker import PollSchedule, Tracker
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
KEY = "faults-key"
BASIC = "basic-sim01"
TIME_SCALE = 0.002
# One worker at most: a crashed worker's job must wait for a new worker, which makes the moment
# of the retry observable (and the crash test deterministic).
BASIC_ENDPOINT = """
[endpoints.basic]
id = "basic-sim01"
name = "console-basic"
gpu_pools = ["ADA_24"]
workers_max = 1
"""
FAST_POLLS = PollSchedule(first_s=0.02, factor=1.5, cap_s=0.1, training_cap_s=0.1)
NO_FAULTS = {"failure_rate": 0, "crash_rate": 0, "extra_cold_start_s": 0, "http_429_rate": 0,
             "http_5xx_rate": 0}


def config_text() -> str:
    return (ROOT / "console.toml").read_text(encoding="utf-8") + BASIC_ENDPOINT


def fault_config_now() -> ConsoleConfig:
    return ConsoleConfig.parse(config_text(), path=ROOT / "console.toml", any_role=True)


def config_of(settings) -> ConsoleConfig:
    """The console.toml a test wrote for a console, read the way the simulator-only `basic` role needs."""
    return ConsoleConfig.load(settings.config_path, any_role=True)


@pytest.fixture(scope="session")
def fault_config() -> ConsoleConfig:
    return fault_config_now()


@pytest.fixture
def pod(tmp_path, fault_config):
    started = LocalPod(tmp_path / "localpod", fault_config, api_key=KEY, time_scale=TIME_SCALE,
                       seed_demo=False).start()
    yield started
    started.stop()


@pytest.fixture
def console_settings(pod, tmp_path) -> Settings:
    config_path = tmp_path / "console.toml"
    config_path.write_text(config_text(), encoding="utf-8")
    # The S3 keys are never used here (the volume is not touched), but RunPod mode requires them.
    return Settings(api_key=Secret(KEY), api_url=pod.api_url, rest_url=pod.rest_url,
                    s3_access_key=Secret("unused-access"), s3_secret_key=Secret("unused-secret"),
                    s3_url="http://127.0.0.1:9", config_path=config_path, data_dir=tmp_path / "console-data")


@dataclass
class Admin:
    http: httpx.Client

    def faults(self, endpoint_id: str = BASIC, **values) -> dict:
        response = self.http.put(f"/admin/faults/{endpoint_id}", json=values)
        response.raise_for_status()
        return response.json()

    def settings(self, **values) -> dict:
        response = self.http.put("/admin/settings", json=values)
        response.raise_for_status()
        return response.json()

    def jobs(self, endpoint_id: str = BASIC) -> list[dict]:
        """Every job the simulator holds for the endpoint: what RunPod would have in its queue."""
        response = self.http.get("/admin/jobs", params={"endpoint_id": endpoint_id})
        response.raise_for_status()
        return response.json()["jobs"]

    def wait_job(self, predicate: Callable[[dict], bool], timeout_s: float = 10.0,
                 endpoint_id: str = BASIC) -> dict:
        return wait_until(lambda: next((job for job in self.jobs(endpoint_id) if predicate(job)), None),
                          timeout_s, what=f"a simulator job on {endpoint_id} to match")


@pytest.fixture
def admin(pod):
    with httpx.Client(base_url=pod.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        yield Admin(http)


@dataclass
class RecordingClient:
    """A RunPod client plus every HTTP attempt it made and every retry pause it asked for."""

    client: RunPod
    attempts: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    sleeps: list[float] = field(default_factory=list)

    def attempts_on(self, method: str, suffix: str) -> list[int]:
        return [status for m, path, status in self.attempts if m == method and path.endswith(suffix)]


def recording_client(api_url: str, rest_url: str) -> RecordingClient:
    box = RecordingClient(client=None)  # type: ignore[arg-type]

    def on_response(response: httpx.Response) -> None:
        box.attempts.append((response.request.method, response.request.url.path, response.status_code))

    # Retry pauses are recorded instead of slept: the storms below would otherwise take minutes.
    box.client = RunPod(KEY, api_url=api_url, rest_url=rest_url, sleep=box.sleeps.append,
                        event_hooks={"response": [on_response]})
    return box


@pytest.fixture
def client(pod):
    box = recording_client(pod.api_url, pod.rest_url)
    yield box
    box.client.close()


@pytest.fixture
def make_tracker(tmp_path, fault_config):
    made: list[tuple[Tracker, JobStore]] = []

    def make(target, *, start: bool = True, data_dir: Path | None = None, store: JobStore | None = None,
             **options) -> Tracker:
        """target: a RunPod client (each job followed on the endpoint it was sent to), or an
        endpoint double (an object with run() and status()) that serves every role."""
        if isinstance(target, RunPod):
            options = {"jobs_at": jobs_at(target), **options}
            jobs_for = lambda role: target.for_spec(fault_config.endpoint(role))
        else:
            jobs_for = lambda role: target
        store = store or JobStore(data_dir or tmp_path / "console")
        tracker = Tracker(store, fault_config, jobs_for, schedule=FAST_POLLS, **options)
        made.append((tracker, store))
        return tracker.start() if start else tracker

    yield make
    for tracker, store in made:
        tracker.stop()
        store.close()


# --------------------------------------------------------------------------- the wire proxy

PASS, REFUSE_429, DROP_BEFORE, DROP_AFTER, HTTP_500_AFTER = (
    "pass", "429", "drop-before", "drop-after", "500-after")


@dataclass
class Rule:
    method: str
    suffix: str
    action: str
    times: int


class WireProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 in front of the simulator that breaks chosen requests.

    A rule (method, path suffix, action, times) applies to the next `times` matching requests:
    - REFUSE_429:     answered 429 (Retry-After: 0) without forwarding: RunPod refused it.
    - DROP_BEFORE:    the request was read but never forwarded; the connection is reset.
    - DROP_AFTER:     the request reached the simulator (the job exists), then the connection is
                      reset before any byte of the answer: the client cannot know what happened.
    - HTTP_500_AFTER: the request reached the simulator, the client gets a 500 instead of its answer.
    `log` lists (method, path, action) of every request the proxy saw.
    """

    PASS, REFUSE_429, DROP_BEFORE, DROP_AFTER, HTTP_500_AFTER = (
        PASS, REFUSE_429, DROP_BEFORE, DROP_AFTER, HTTP_500_AFTER)

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, name="wire-proxy", daemon=True)
        accept.start()
        self._threads.append(accept)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, method: str, suffix: str, action: str, times: int = 1) -> None:
        with self._lock:
            self.rules.append(Rule(method, suffix, action, times))

    def seen(self, method: str, suffix: str) -> list[str]:
        return [action for m, path, action in self.log if m == method and path.endswith(suffix)]

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for thread in self._threads:
            thread.join(2)

    def _action(self, method: str, path: str) -> str:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and path.split("?")[0].endswith(rule.suffix):
                    rule.times -= 1
                    self.log.append((method, path, rule.action))
                    return rule.action
            self.log.append((method, path, PASS))
            return PASS

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True, name="wire-proxy-conn")
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buffer = b""
        try:
            while not self._stop.is_set():
                request, buffer = _read_message(conn, buffer)
                if request is None:
                    return
                head = request.split(b"\r\n", 1)[0].decode("latin-1").split()
                method, path = head[0], head[1]
                action = self._action(method, path)
                if action == DROP_BEFORE:
                    _reset(conn)
                    return
                if action == REFUSE_429:
                    conn.sendall(_canned(429, "Too Many Requests", b'{"error":"too many requests"}',
                                         b"retry-after: 0\r\n"))
                    continue
                answer = self._forward(request)
                if action == DROP_AFTER:
                    _reset(conn)
                    return
                if action == HTTP_500_AFTER:
                    answer = _canned(500, "Internal Server Error",
                                     b'{"error":"internal server error (injected by the test proxy)"}')
                conn.sendall(answer)
        except OSError:
            return
        finally:
            conn.close()

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as upstream:
            upstream.sendall(request)
            answer, _ = _read_message(upstream, b"")
        if answer is None:
            raise OSError("the simulator closed the connection without answering")
        return answer


def _read_message(sock: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """One HTTP/1.1 message with a Content-Length body (all the simulator sends), and what follows."""
    while b"\r\n\r\n" not in buffer:
        ready, _, _ = select.select([sock], [], [], 10)
        chunk = sock.recv(65536) if ready else b""
        if not chunk:
            return None, b""
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def _canned(status: int, reason: str, body: bytes, extra_headers: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n".encode() + extra_headers + b"\r\n" + body)


def _reset(conn: socket.socket) -> None:
    """Close with RST, as a dropped network path or a killed middlebox does."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@pytest.fixture
def proxy(pod):
    port = int(pod.url.rsplit(":", 1)[1])
    wire = WireProxy(port)
    yield wire
    wire.close()


@pytest.fixture
def proxied_client(proxy):
    box = recording_client(proxy.url("/v2"), proxy.url("/rest/v2"))
    yield box
    box.client.close()
