"""Things that break the console's own machine: another program locking the store, a full disk,
a download that drips, a worker under development that runs jobs inside POST /status."""
from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import lib.store

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@contextmanager
def store_locked_by_another_process(path: Path, seconds: float):
    """A second process holds BEGIN EXCLUSIVE on the SQLite file for `seconds` (a backup tool, the
    sqlite3 shell). Yields once the lock is held; leaves after the process ended."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
        proc.wait(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class FullDisk:
    """Injected into lib.store's file writer: every output write fails with ENOSPC while `full`."""

    def __init__(self, monkeypatch):
        self.full = True
        self.refused = 0
        self._write = lib.store._write_file
        monkeypatch.setattr(lib.store, "_write_file", self)

    def __call__(self, target: Path, data: bytes) -> None:
        if self.full:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        self._write(target, data)


class _DripHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server: DripServer = self.server.owner  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(server.body)))
        self.end_headers()
        try:
            for byte in server.body:
                if server.stop.wait(server.every_s):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except OSError:
            return

    def log_message(self, *args):
        pass


class DripServer:
    """An s3_url host that sends one byte every `every_s` seconds (a stalled object store)."""

    def __init__(self, body: bytes = b"\x89PNG\r\n\x1a\n" + b"x" * 64, every_s: float = 1.0):
        self.body = body
        self.every_s = every_s
        self.stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/out/drip.png"

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


class _ServeApiHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        api: DevWorkerDouble = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/run":
            job_id = f"test-{uuid.uuid4()}"
            with api.lock:
                api.jobs[job_id] = body["input"]
            return self._json({"id": job_id, "status": "IN_PROGRESS"})
        if self.path.startswith("/status/"):
            job_id = self.path.rsplit("/", 1)[1]
            with api.lock:
                job_input = api.jobs.get(job_id)
                if job_input is not None:
                    api.runs.append(job_id)
            if job_input is None:
                return self._json({"id": job_id, "status": "FAILED", "error": "Job ID not found"})
            time.sleep(float(job_input.get("sleep_s", 0)))  # the handler runs inside the request
            with api.lock:
                api.jobs.pop(job_id, None)  # forgotten once it ran
            try:
                return self._json({"id": job_id, "status": "COMPLETED", "output": {"echo": job_input.get("echo")}})
            except OSError:  # the client gave up waiting: the result is lost, as with runpod's API
                return None
        return self._json({"detail": "Not Found"}, 404)

    def _json(self, data, status: int = 200) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


class DevWorkerDouble:
    """runpod's local test API (`handler.py --rp_serve_api`) as reference/runpod-api.md describes
    it: routes at the root, /run only stores, POST /status runs the job inside the request and
    forgets it afterwards, an unknown id is a 200 FAILED "Job ID not found". `runs` lists each
    start of a job; a job posted twice while it runs starts twice."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.runs: list[str] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ServeApiHandler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


PNG_BASE64 = "iVBORw0KGgpkZXRlcm1pbmlzdGljIGltYWdl"  # b"\x89PNG\r\n\x1a\n" + b"deterministic image"


class _MiniPodHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        pod: MiniPod = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if not self.path.endswith("/run"):
            return self._json({"error": "not found"}, 404)
        with pod.lock:
            job_id = f"mini-{len(pod.runs) + 1}"
            pod.runs.append(job_id)
        self._json({"id": job_id, "status": "IN_QUEUE"})

    def do_GET(self):  # noqa: N802
        pod: MiniPod = self.server.owner  # type: ignore[attr-defined]
        job_id = self.path.rsplit("/", 1)[1]
        if "/status/" not in self.path or job_id not in pod.runs:
            return self._json({"error": f"job {job_id} not found"}, 404)
        self._json({"id": job_id, "status": "COMPLETED", "delayTime": 120, "executionTime": 800,
                    "workerId": "mini-worker",
                    "output": {"images": [{"filename": f"{job_id}.png", "type": "base64", "data": PNG_BASE64}]}})

    _json = _ServeApiHandler._json

    def log_message(self, *args):
        pass


class MiniPod:
    """RunPod's job API reduced to /run and /status (reference/runpod-api.md §1), whose every job
    completes at once with one base64 image in worker-comfyui's output shape. `runs` lists every
    job it was given, so a second submission shows."""

    def __init__(self):
        self.runs: list[str] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _MiniPodHandler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v2"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
