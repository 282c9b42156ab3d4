"""Typed results of the RunPod job API and REST v2, parsed strictly: a field of the wrong type is a
BadResponse naming the operation, a missing optional field takes RunPod's documented default."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from lib.jobstate import FINAL, RUNPOD, JobState
from lib.runpod.errors import BadResponse

# RunPod's job states are the RUNPOD part of the console's one vocabulary (lib/jobstate.py); the client
# only ever parses those six.
JobStatus = JobState


def parse_status(value: object, where: str = "RunPod") -> JobState:
    """A job status as RunPod reports it; anything else (a console-only state included) is BadResponse."""
    # The docs list RUNNING but the API reports IN_PROGRESS (runpod/docs issue #511).
    if value == "RUNNING":
        return JobState.IN_PROGRESS
    if isinstance(value, str) and value in {s.value for s in RUNPOD}:
        return JobState(value)
    raise BadResponse(f"{where}: unknown job status {value!r} — expected one of "
                      f"{', '.join(sorted(s.value for s in RUNPOD))}; the API may have changed")


# "No further change will come" on RunPod's side, CANCELLED included (the SDK's stream() forgets it).
TERMINAL = FINAL & RUNPOD


class Reader:
    """Typed access to one JSON object of a response; wrong types raise BadResponse."""

    def __init__(self, data: object, where: str, what: str = "the answer"):
        if not isinstance(data, dict):
            raise BadResponse(f"{where}: expected a JSON object as {what}, got {_kind(data)} — the API "
                              f"may have changed or the URL points at something else")
        self.data = data
        self.where = where
        self.what = what

    def _bad(self, key: str, expected: str) -> BadResponse:
        value = self.data.get(key)
        return BadResponse(f"{self.where}: field {key!r} of {self.what} is {_kind(value)} {_short(value)}, "
                           f"expected {expected} — the API may have changed")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    @overload
    def text(self, key: str) -> str | None: ...
    @overload
    def text(self, key: str, default: str) -> str: ...
    @overload
    def text(self, key: str, default: None) -> str | None: ...

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise BadResponse(f"{self.where}: {self.what} has no {key!r} — the API may have changed")
        return value

    @overload
    def integer(self, key: str) -> int | None: ...
    @overload
    def integer(self, key: str, default: int) -> int: ...
    @overload
    def integer(self, key: str, default: None) -> int | None: ...

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise self._bad(key, "a number")
        if isinstance(value, float) and not value.is_integer():
            return round(value)
        return int(value)

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise self._bad(key, "a number")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        items = self.items(key)
        if not all(isinstance(i, str) for i in items):
            raise self._bad(key, "a list of strings")
        return tuple(items)

    def obj(self, key: str) -> Reader:
        value = self.data.get(key)
        return Reader({} if value is None else value, self.where, f"{key!r}")

    def time(self, key: str) -> datetime | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self._bad(key, "an RFC 3339 timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _finite(value: int | float) -> bool:
    # Python's json accepts NaN and Infinity, which RunPod never sends; round() would crash on them.
    return not isinstance(value, float) or math.isfinite(value)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return f"({text[:60]}…)" if len(text) > 60 else f"({text})"


# --------------------------------------------------------------------------- job API


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    delay_time_ms: int | None = None
    execution_time_ms: int | None = None
    worker_id: str | None = None
    retries: int | None = None
    output: object = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: object, where: str, job_id: str | None = None) -> Job:
        r = Reader(data, where, "the job")
        ident = r.text("id") or job_id
        if not ident:
            raise BadResponse(f"{where}: the answer has no job id — the API may have changed")
        error = r.data.get("error")
        if error is not None and not isinstance(error, str):
            # A handler returning a non-string error: keep it readable rather than fail the poll.
            error = repr(error)
        return cls(
            id=ident,
            status=parse_status(r.data.get("status"), where),
            delay_time_ms=r.integer("delayTime"),
            execution_time_ms=r.integer("executionTime"),
            worker_id=r.text("workerId"),
            retries=r.integer("retries"),
            output=r.data.get("output"),
            error=error,
            raw=dict(r.data),
        )


@dataclass(frozen=True)
class StreamPage:
    status: JobStatus
    chunks: list[Any]  # each yielded value, unwrapped from RunPod's {"output": ...}
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: object, where: str) -> StreamPage:
        r = Reader(data, where, "the stream page")
        chunks = []
        for item in r.items("stream"):
            if isinstance(item, dict) and "output" in item:
                chunks.append(item["output"])
            else:
                raise BadResponse(f"{where}: a stream chunk is {_kind(item)}, expected "
                                  f"{{\"output\": ...}} — the API may have changed")
        return cls(status=parse_status(r.data.get("status"), where), chunks=chunks,
                   id=r.text("id"), raw=dict(r.data))


@dataclass(frozen=True)
class PurgeResult:
    removed: int
    status: str

    @classmethod
    def from_json(cls, data: object, where: str) -> PurgeResult:
        r = Reader(data, where, "the purge result")
        return cls(removed=r.integer("removed", 0), status=r.text("status", ""))


@dataclass(frozen=True)
class JobCounts:
    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0


@dataclass(frozen=True)
class WorkerCounts:
    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0

    @property
    def total(self) -> int:
        return self.idle + self.initializing + self.ready + self.running + self.throttled + self.unhealthy


@dataclass(frozen=True)
class Health:
    jobs: JobCounts
    workers: WorkerCounts

    @classmethod
    def from_json(cls, data: object, where: str) -> Health:
        r = Reader(data, where, "the health report")
        j, w = r.obj("jobs"), r.obj("workers")
        return cls(
            jobs=JobCounts(completed=j.integer("completed", 0), failed=j.integer("failed", 0),
                           in_progress=j.integer("inProgress", 0), in_queue=j.integer("inQueue", 0),
                           retried=j.integer("retried", 0)),
            workers=WorkerCounts(idle=w.integer("idle", 0), initializing=w.integer("initializing", 0),
                                 ready=w.integer("ready", 0), running=w.integer("running", 0),
                                 throttled=w.integer("throttled", 0), unhealthy=w.integer("unhealthy", 0)),
        )


# --------------------------------------------------------------------------- REST v2

FLASHBOOT_MODES = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    gpu_pools: tuple[str, ...]
    gpu_count: int
    workers_min: int
    workers_max: int
    idle_timeout_s: int
    scaling_type: str
    scaling_value: float
    flashboot: bool
    flashboot_mode: str
    timeout_ms: int
    data_center_ids: tuple[str, ...]
    network_volume_ids: tuple[str, ...]
    image: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # repr=False: an endpoint's environment may hold credentials someone typed into RunPod's console.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    disk_gb: int | None = None      # container disk; None when RunPod does not report it
    min_cuda_version: str | None = None             # gpu.minCudaVersion; None when not set
    allowed_cuda_versions: tuple[str, ...] = ()     # gpu.allowedCudaVersions; () when not set

    @classmethod
    def from_json(cls, data: object, where: str) -> Endpoint:
        # Defaults for absent fields are RunPod's documented endpoint defaults (reference §1.11).
        r = Reader(data, where, "the endpoint")
        gpu, workers, scaling = r.obj("gpu"), r.obj("workers"), r.obj("scaling")
        scaling_type = scaling.text("type", "QUEUE_DELAY")
        if scaling_type == "REQUEST_COUNT":
            scaling_value = scaling.number("requestCount", 4)
        else:
            scaling_value = scaling.number("queueDelay", 4)
        raw_flash = r.data.get("flashboot")
        if isinstance(raw_flash, bool):  # v1-style answers carry a boolean
            mode = "FLASHBOOT" if raw_flash else "OFF"
        else:
            # §1.11: FlashBoot is on for new endpoints when nothing says otherwise.
            mode = r.text("flashboot", "FLASHBOOT")
            if mode not in FLASHBOOT_MODES:
                raise BadResponse(f"{where}: unknown flashboot mode {mode!r} — expected one of "
                                  f"{', '.join(FLASHBOOT_MODES)}; the API may have changed")
        volumes = []
        for item in r.items("networkVolumes"):
            if isinstance(item, str):
                volumes.append(item)
            elif isinstance(item, dict) and isinstance(item.get("id") or item.get("networkVolumeId"), str):
                volumes.append(item.get("id") or item["networkVolumeId"])
            else:
                raise BadResponse(f"{where}: networkVolumes holds {_kind(item)}, expected volume ids")
        image = r.data.get("image")
        if isinstance(image, dict):
            image = image.get("name") or image.get("image")
        if image is not None and not isinstance(image, str):
            raise BadResponse(f"{where}: field 'image' is {_kind(image)}, expected a string")
        return cls(
            id=r.required_text("id"),
            name=r.text("name", ""),
            gpu_pools=gpu.texts("pools"),
            gpu_count=gpu.integer("count", 1),
            workers_min=workers.integer("min", 0),
            workers_max=workers.integer("max", 3),
            idle_timeout_s=workers.integer("idleTimeout", 5),
            scaling_type=scaling_type,
            scaling_value=scaling_value,
            flashboot=mode != "OFF",
            flashboot_mode=mode,
            timeout_ms=r.integer("timeout", 600_000),
            data_center_ids=r.texts("dataCenterIds"),
            network_volume_ids=tuple(volumes),
            image=image or "",
            raw=dict(r.data),
            env=_env(r.data.get("env"), where),
            disk_gb=r.integer("disk"),
            min_cuda_version=gpu.text("minCudaVersion", "") or None,
            allowed_cuda_versions=gpu.texts("allowedCudaVersions"),
        )


def _env(value: object, where: str) -> dict[str, str]:
    """v2 sends env as an object of strings; v1/GraphQL answers use a list of {key, value}."""
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(i, dict) and isinstance(i.get("key"), str) for i in value):
        value = {i["key"]: i.get("value") for i in value}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadResponse(f"{where}: field 'env' is {_kind(value)}, expected an object of strings — the API "
                          f"may have changed")
    return dict(value)


@dataclass(frozen=True)
class Worker:
    id: str
    status: str
    created_at: datetime | None = None

    @classmethod
    def from_json(cls, data: object, where: str) -> Worker:
        r = Reader(data, where, "a worker")
        return cls(id=r.required_text("id"), status=r.text("status", "UNKNOWN"), created_at=r.time("createdAt"))


@dataclass(frozen=True)
class WorkersSummary:
    workers: list[Worker]
    running: int = 0
    idle: int = 0
    initializing: int = 0
    throttled: int = 0
    unhealthy: int = 0
    total: int = 0
    endpoint_version: int | None = None

    @classmethod
    def from_json(cls, data: object, where: str) -> WorkersSummary:
        r = Reader(data, where, "the workers list")
        s = r.obj("summary")
        workers = [Worker.from_json(w, where) for w in r.items("workers")]
        return cls(workers=workers, running=s.integer("running", 0), idle=s.integer("idle", 0),
                   initializing=s.integer("initializing", 0), throttled=s.integer("throttled", 0),
                   unhealthy=s.integer("unhealthy", 0), total=s.integer("total", len(workers)),
                   endpoint_version=r.integer("endpointVersion"))


@dataclass(frozen=True)
class NetworkVolume:
    id: str
    name: str
    size_gb: int
    datacenter: str
    type: str = "STANDARD"

    @classmethod
    def from_json(cls, data: object, where: str) -> NetworkVolume:
        r = Reader(data, where, "the network volume")
        return cls(id=r.required_text("id"), name=r.text("name", ""), size_gb=r.integer("size", 0),
                   datacenter=r.text("dataCenter") or r.text("dataCenterId", ""),
                   type=r.text("type", "STANDARD"))


@dataclass(frozen=True)
class BillingRecord:
    start: datetime | None
    end: datetime | None
    total: float
    gpu: float = 0.0
    cpu: float = 0.0
    disk: float = 0.0
    fee: float = 0.0
    serverless_id: str | None = None

    @classmethod
    def from_json(cls, data: object, where: str) -> BillingRecord:
        r = Reader(data, where, "a billing record")
        return cls(start=r.time("startTime"), end=r.time("endTime"), total=r.number("totalAmount", 0.0),
                   gpu=r.number("gpuAmount", 0.0), cpu=r.number("cpuAmount", 0.0), disk=r.number("diskAmount", 0.0),
                   fee=r.number("feeAmount", 0.0), serverless_id=r.text("serverlessId"))


@dataclass(frozen=True)
class BillingReport:
    records: list[BillingRecord]
    totals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeBillingRecord:
    start: datetime | None
    end: datetime | None
    total: float
    standard: float = 0.0
    high_performance: float = 0.0
    network_volume_id: str | None = None

    @classmethod
    def from_json(cls, data: object, where: str) -> VolumeBillingRecord:
        r = Reader(data, where, "a billing record")
        return cls(start=r.time("startTime"), end=r.time("endTime"), total=r.number("totalAmount", 0.0),
                   standard=r.number("standardAmount", 0.0), high_performance=r.number("highPerformanceAmount", 0.0),
                   network_volume_id=r.text("networkVolumeId"))
