"""Fakes shared by the suites: a RunPod client on a recording mock transport, a scripted endpoint
for the tracker, a recording job context for the simulator's handlers, a volume holding model files
and encoded test images."""
from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from lib.localpod.handlers import JobContext
from lib.runpod import Job, JobStatus, RunPod
from tests.support.clock import FakeClock

KEY = "rpa_CANARY_7f3e9c1d2b4a"
API_URL = "https://api.test/v2"
REST_URL = "https://rest.test/v2"


def recording_runpod(handler: Callable[[httpx.Request], httpx.Response], *, start: float = 1000.0,
                     **kw) -> tuple[RunPod, list[httpx.Request], FakeClock[float]]:
    """A RunPod client whose requests `handler` answers; returns it, the requests seen and its clock."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    clock: FakeClock[float] = FakeClock(start)
    client = RunPod(KEY, api_url=API_URL, rest_url=REST_URL, transport=httpx.MockTransport(record),
                    sleep=clock.sleep, clock=clock.now, **kw)
    return client, seen, clock


class FakeJobs:
    """A RunPod endpoint for the tracker: /run hands out rp-0, rp-1, …; /status walks each job id
    through the statuses scripted for it (an Exception in the script is raised), or answers what
    `final(job_id)` says, or IN_QUEUE."""

    def __init__(self, script: dict[str, list] | None = None, run_error: Exception | None = None,
                 final: Callable[[str], Job] | None = None):
        self.script = script or {}
        self.run_error = run_error
        self.final = final
        self.runs: list[dict] = []
        self.cancels: list[str] = []
        self.retries: list[str] = []
        self.lock = threading.Lock()

    def run(self, input, *, policy=None, webhook=None) -> Job:
        if self.run_error:
            raise self.run_error
        with self.lock:
            job_id = f"rp-{len(self.runs)}"
            self.runs.append(input)
        return Job(id=job_id, status=JobStatus.IN_QUEUE)

    def status(self, job_id: str) -> Job:
        if self.final:
            return self.final(job_id)
        steps = self.script.get(job_id) or [Job(id=job_id, status=JobStatus.IN_QUEUE)]
        item = steps.pop(0) if len(steps) > 1 else steps[0]
        if isinstance(item, Exception):
            raise item
        return item

    def cancel(self, job_id: str) -> Job:
        self.cancels.append(job_id)
        return Job(id=job_id, status=JobStatus.CANCELLED)

    def retry(self, job_id: str) -> Job:
        self.retries.append(job_id)
        return Job(id=job_id, status=JobStatus.IN_QUEUE)


class RecordingContext(JobContext):
    """A real JobContext of the `role` endpoint that keeps its progress updates and adds up the
    simulated seconds the handler spends."""

    def __init__(self, volume_dir: Path, role: str = "image", job_id: str = "job-1", worker_id: str = "w1",
                 **kw):
        self.updates: list = []
        super().__init__(job_id, f"{role}-sim01", role, worker_id, volume_dir, 0.0,
                         on_progress=self.updates.append, **kw)
        self.simulated = 0.0

    def sleep(self, simulated_seconds: float) -> None:
        self.simulated += simulated_seconds
        super().sleep(simulated_seconds)


def volume_with(root: Path, keys: Iterable[str]) -> Path:
    """`root` as a network volume holding a placeholder file at each key (e.g. model weights)."""
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    return root


def _encoded(image: np.ndarray | Image.Image, fmt: str, **save_kw) -> bytes:
    picture = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **save_kw)
    return buffer.getvalue()


def png(image: np.ndarray | Image.Image) -> bytes:
    return _encoded(image, "PNG")


def jpeg(image: np.ndarray | Image.Image, **save_kw) -> bytes:
    return _encoded(image, "JPEG", **save_kw)
