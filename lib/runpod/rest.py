"""RestV2: RunPod's management API v2 ({rest_url}/serverless, /network-volumes, /billing/...)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from lib.runpod.errors import BadResponse, RateLimited
from lib.runpod.http import Hints, HttpCore, Retry, dump_json
from lib.runpod.models import (
    BillingRecord,
    BillingReport,
    Endpoint,
    NetworkVolume,
    Reader,
    VolumeBillingRecord,
    WorkersSummary,
)

SCALING_FIELDS = {"QUEUE_DELAY": "queueDelay", "REQUEST_COUNT": "requestCount"}
BUCKET_SIZES = ("hour", "day", "week", "month", "year")


def parse_ratelimit(value: str) -> list[dict[str, str]]:
    """Parameters of each window in an IETF RateLimit header: '"minute";r=0;t=12, "hour";r=2800;t=1812'."""
    windows = []
    for item in value.split(","):
        params = {}
        for part in item.split(";")[1:]:
            key, _, val = part.partition("=")
            params[key.strip()] = val.strip()
        windows.append(params)
    return windows


class RateLimitGate:
    """When a window reports r=0, the next REST call waits t seconds first (or fails fast beyond the cap)."""

    def __init__(self, cap_s: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self._cap_s = cap_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._blocked_until = 0.0

    def before(self, operation: str) -> None:
        with self._lock:
            wait = self._blocked_until - self._clock()
        if wait <= 0:
            return
        if wait > self._cap_s:
            raise RateLimited(f"{operation}: RunPod's REST rate limit is used up for the next {wait:.0f} s — "
                              f"try again after that", retry_after=wait, status=429, operation=operation)
        self._sleep(wait)

    def observe(self, response: httpx.Response) -> None:
        header = response.headers.get("ratelimit")
        if not header:
            return
        wait = 0.0
        for params in parse_ratelimit(header):
            try:
                if int(params.get("r", "1")) <= 0:
                    wait = max(wait, float(params.get("t", "0")))
            except ValueError:
                continue  # a malformed window must not break the call it came with
        with self._lock:
            self._blocked_until = self._clock() + wait if wait > 0 else 0.0


def as_utc(value: datetime) -> datetime:
    """A naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_endpoint_body(*, name: str, image: str, gpu_pools: Sequence[str], gpu_count: int, workers_min: int,
                         workers_max: int, idle_timeout_s: int, scaling_type: str, scaling_value: float,
                         flashboot: bool, timeout_ms: int, data_center_ids: Sequence[str],
                         network_volume_ids: Sequence[str],
                         env: Mapping[str, str] | None, disk_gb: int | None,
                         min_cuda_version: str | None = None,
                         allowed_cuda_versions: Sequence[str] | None = None) -> dict[str, Any]:
    """The v2 CreateEndpointRequest for a GPU queue endpoint with its container settings inline.

    v2 takes the container settings (image, env, disk) in the endpoint body, so the console needs no
    separate template (a templateId would be resolved into the same fields once, at create time).
    """
    kind = scaling_type.upper()
    if kind not in SCALING_FIELDS:
        raise ValueError(f"create_endpoint: scaling_type must be one of {', '.join(SCALING_FIELDS)}")
    pools = list(gpu_pools)
    if not pools:
        raise ValueError("create_endpoint: give at least one GPU pool")
    workers = {"min": int(workers_min), "max": int(workers_max)}
    if kind == "QUEUE_DELAY":
        # v2 rejects idleTimeout on queue endpoints that scale on requestCount.
        workers["idleTimeout"] = int(idle_timeout_s)
    value = scaling_value
    if kind == "REQUEST_COUNT" or float(value).is_integer():
        value = int(value)
    body: dict[str, Any] = {
        "name": name, "type": "QUEUE", "image": image,
        "gpu": {"pools": pools, "count": int(gpu_count)},
        "workers": workers,
        "scaling": {"type": kind, SCALING_FIELDS[kind]: value},
        "timeout": int(timeout_ms),
        "flashboot": "FLASHBOOT" if flashboot else "OFF",
        "dataCenterIds": list(data_center_ids),
        "networkVolumes": list(network_volume_ids),
        "env": dict(env or {}),
    }
    if disk_gb is not None:
        body["disk"] = int(disk_gb)
    body["gpu"].update(_cuda_fields(min_cuda_version, allowed_cuda_versions))
    return body


def _cuda_fields(min_cuda_version: str | None, allowed_cuda_versions: Sequence[str] | None) -> dict[str, Any]:
    """gpu.minCudaVersion / gpu.allowedCudaVersions (reference §3.2), only those given."""
    fields: dict[str, Any] = {}
    if min_cuda_version is not None:
        fields["minCudaVersion"] = str(min_cuda_version)
    if allowed_cuda_versions is not None:
        fields["allowedCudaVersions"] = [str(v) for v in allowed_cuda_versions]
    return fields


class RestV2:
    def __init__(self, core: HttpCore, rest_url: str):
        self._core = core
        self.base = rest_url.rstrip("/")
        self._gate = RateLimitGate(core.retry_cap_s, core.clock, core.sleep)

    def __repr__(self) -> str:
        return f"RestV2({self.base!r})"

    def _get(self, path: str, *, params: dict[str, Any] | None = None, not_found: str = "not found — check the id",
             url: str | None = None) -> object:
        op = f"GET {path} (RunPod REST)"
        return self._core.request("GET", url or self.base + path, operation=op, retry=Retry.IDEMPOTENT,
                                  params=params, hints=Hints(not_found=not_found), gate=self._gate)

    def _pages(self, path: str, key: str) -> Iterator[tuple[dict[str, Any], str]]:
        """Items of a wrapped list, following nextCursor / next if the body carries one."""
        op = f"GET {path} (RunPod REST)"
        url, params = self.base + path, None
        seen: set[str] = set()
        while True:
            data = self._get(path, params=params, url=url)
            if isinstance(data, list):  # tolerate an unwrapped list
                items, r = data, None
            else:
                r = Reader(data, op, "the list")
                items = r.items(key)
            for item in items:
                yield item, op
            cursor = r.text("nextCursor") if r else None
            nxt = r.text("next") if r else None
            token = cursor or nxt
            if not token:
                return
            if token in seen:
                raise BadResponse(f"{op}: RunPod sent the same page cursor twice ({token!r}) — stopping to "
                                  f"avoid an endless listing; try again later")
            seen.add(token)
            if cursor:
                url, params = self.base + path, {"cursor": cursor}
            else:
                url, params = urljoin(self.base + path, nxt), None

    # ------------------------------------------------------------------ endpoints

    def endpoints(self) -> Iterator[Endpoint]:
        for item, op in self._pages("/serverless", "endpoints"):
            yield Endpoint.from_json(item, op)

    def endpoint(self, endpoint_id: str) -> Endpoint:
        path = f"/serverless/{quote(endpoint_id, safe='')}"
        data = self._get(path, not_found=_endpoint_missing(endpoint_id))
        return Endpoint.from_json(data, f"GET {path} (RunPod REST)")

    def create_endpoint(self, *, name: str, image: str, gpu_pools: list[str] | tuple[str, ...],
                        gpu_count: int = 1, workers_min: int = 0, workers_max: int = 3, idle_timeout_s: int = 5,
                        scaling_type: str = "QUEUE_DELAY", scaling_value: float = 4, flashboot: bool = True,
                        timeout_ms: int = 600_000, data_center_ids: list[str] | tuple[str, ...] = (),
                        network_volume_ids: list[str] | tuple[str, ...] = (),
                        env: Mapping[str, str] | None = None, disk_gb: int | None = None,
                        min_cuda_version: str | None = None,
                        allowed_cuda_versions: list[str] | tuple[str, ...] | None = None) -> Endpoint:
        """POST /serverless: a queue endpoint running `image` (v2 CreateEndpointRequest, reference §3.2).

        Every setting is sent explicitly: v2's create defaults (timeout 300 s, FlashBoot OFF, idle
        timeout 10 s) differ from RunPod's documented endpoint defaults, and the console's declaration
        must not depend on which of the two a server applies.
        """
        body = create_endpoint_body(
            name=name, image=image, gpu_pools=gpu_pools, gpu_count=gpu_count, workers_min=workers_min,
            workers_max=workers_max, idle_timeout_s=idle_timeout_s, scaling_type=scaling_type,
            scaling_value=scaling_value, flashboot=flashboot, timeout_ms=timeout_ms,
            data_center_ids=data_center_ids, network_volume_ids=network_volume_ids, env=env, disk_gb=disk_gb,
            min_cuda_version=min_cuda_version, allowed_cuda_versions=allowed_cuda_versions)
        op = "POST /serverless (RunPod REST)"
        # Retried like a job submission (only on 429/503): a blind retry could create a second endpoint.
        data = self._core.request("POST", self.base + "/serverless", operation=op, retry=Retry.SUBMIT,
                                  body=dump_json(body, op), gate=self._gate)
        return Endpoint.from_json(data, op)

    def delete_endpoint(self, endpoint_id: str) -> None:
        """DELETE /serverless/{id}. RunPod may refuse while the endpoint still has workers (reference §3.3)."""
        path = f"/serverless/{quote(endpoint_id, safe='')}"
        self._core.request("DELETE", self.base + path, operation=f"DELETE {path} (RunPod REST)",
                           retry=Retry.MUTATE, gate=self._gate,
                           hints=Hints(not_found=f"endpoint {endpoint_id} not found — it may be deleted already"))

    def update_endpoint(self, endpoint_id: str, *, name: str | None = None, workers_min: int | None = None,
                        workers_max: int | None = None, idle_timeout_s: int | None = None,
                        scaling_type: str | None = None, scaling_value: float | None = None,
                        flashboot: bool | None = None, timeout_ms: int | None = None,
                        gpu_pools: list[str] | tuple[str, ...] | None = None, gpu_count: int | None = None,
                        image: str | None = None, env: Mapping[str, str] | None = None,
                        data_center_ids: list[str] | tuple[str, ...] | None = None,
                        network_volume_ids: list[str] | tuple[str, ...] | None = None,
                        disk_gb: int | None = None, min_cuda_version: str | None = None,
                        allowed_cuda_versions: list[str] | tuple[str, ...] | None = None) -> Endpoint:
        """PATCH only the given fields, in v2 shape. `env` replaces the endpoint's whole environment."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        workers = {k: v for k, v in (("min", workers_min), ("max", workers_max),
                                     ("idleTimeout", idle_timeout_s)) if v is not None}
        if workers:
            body["workers"] = workers
        if (scaling_type is None) != (scaling_value is None):
            raise ValueError("update_endpoint: give scaling_type and scaling_value together "
                             "(RunPod replaces the whole scaling setting)")
        if scaling_type is not None:
            kind = scaling_type.upper()
            if kind not in SCALING_FIELDS:
                raise ValueError(f"update_endpoint: scaling_type must be one of {', '.join(SCALING_FIELDS)}")
            body["scaling"] = {"type": kind, SCALING_FIELDS[kind]: scaling_value}
        if flashboot is not None:
            body["flashboot"] = "FLASHBOOT" if flashboot else "OFF"
        if timeout_ms is not None:
            body["timeout"] = int(timeout_ms)
        gpu = {k: v for k, v in (("pools", None if gpu_pools is None else list(gpu_pools)),
                                 ("count", gpu_count)) if v is not None}
        gpu.update(_cuda_fields(min_cuda_version, allowed_cuda_versions))
        if gpu:
            body["gpu"] = gpu
        for key, value in (("image", image), ("env", None if env is None else dict(env)),
                           ("dataCenterIds", None if data_center_ids is None else list(data_center_ids)),
                           ("networkVolumes", None if network_volume_ids is None else list(network_volume_ids)),
                           ("disk", disk_gb)):
            if value is not None:
                body[key] = value
        if not body:
            raise ValueError("update_endpoint: nothing to change — pass at least one field")
        path = f"/serverless/{quote(endpoint_id, safe='')}"
        op = f"PATCH {path} (RunPod REST)"
        # The same PATCH body twice leaves the same endpoint: safe to retry like a read.
        data = self._core.request("PATCH", self.base + path, operation=op, retry=Retry.IDEMPOTENT,
                                  body=dump_json(body, op), gate=self._gate,
                                  hints=Hints(not_found=_endpoint_missing(endpoint_id)))
        return Endpoint.from_json(data, op)

    def workers(self, endpoint_id: str) -> WorkersSummary:
        path = f"/serverless/{quote(endpoint_id, safe='')}/workers"
        data = self._get(path, not_found=_endpoint_missing(endpoint_id))
        return WorkersSummary.from_json(data, f"GET {path} (RunPod REST)")

    # ------------------------------------------------------------------ network volumes

    def network_volumes(self) -> Iterator[NetworkVolume]:
        for item, op in self._pages("/network-volumes", "networkVolumes"):
            yield NetworkVolume.from_json(item, op)

    def create_network_volume(self, *, name: str, size_gb: int, datacenter: str,
                              type: str | None = None) -> NetworkVolume:
        """POST /network-volumes {name, size, dataCenter[, type]} (reference §3.2)."""
        body = {"name": name, "size": int(size_gb), "dataCenter": datacenter}
        if type is not None:
            body["type"] = type
        op = "POST /network-volumes (RunPod REST)"
        data = self._core.request("POST", self.base + "/network-volumes", operation=op, retry=Retry.SUBMIT,
                                  body=dump_json(body, op), gate=self._gate)
        return NetworkVolume.from_json(data, op)

    def update_network_volume(self, volume_id: str, *, name: str | None = None,
                              size_gb: int | None = None) -> NetworkVolume:
        """PATCH /network-volumes/{id}: rename, or grow (RunPod never shrinks a volume)."""
        body = {k: v for k, v in (("name", name), ("size", size_gb)) if v is not None}
        if not body:
            raise ValueError("update_network_volume: nothing to change — pass name and/or size_gb")
        path = f"/network-volumes/{quote(volume_id, safe='')}"
        op = f"PATCH {path} (RunPod REST)"
        data = self._core.request("PATCH", self.base + path, operation=op, retry=Retry.IDEMPOTENT,
                                  body=dump_json(body, op), gate=self._gate,
                                  hints=Hints(not_found=_volume_missing(volume_id)))
        return NetworkVolume.from_json(data, op)

    def network_volume(self, volume_id: str) -> NetworkVolume:
        path = f"/network-volumes/{quote(volume_id, safe='')}"
        data = self._get(path, not_found=_volume_missing(volume_id))
        return NetworkVolume.from_json(data, f"GET {path} (RunPod REST)")

    # ------------------------------------------------------------------ billing

    def billing_serverless(self, *, start: datetime, end: datetime, bucket_size: str = "day",
                           serverless_id: str | None = None) -> BillingReport:
        params = self._billing_params(start, end, bucket_size)
        if serverless_id:
            params["serverlessId"] = serverless_id
        path = "/billing/serverless"
        op = f"GET {path} (RunPod REST)"
        data = self._get(path, params=params)
        records_raw, totals = self._records(data, op)
        return BillingReport(records=[BillingRecord.from_json(x, op) for x in records_raw], totals=totals)

    def billing_network_volumes(self, *, start: datetime, end: datetime,
                                bucket_size: str = "day") -> list[VolumeBillingRecord]:
        path = "/billing/network-volumes"
        op = f"GET {path} (RunPod REST)"
        data = self._get(path, params=self._billing_params(start, end, bucket_size))
        records_raw, _ = self._records(data, op)
        return [VolumeBillingRecord.from_json(x, op) for x in records_raw]

    @staticmethod
    def _billing_params(start: datetime, end: datetime, bucket_size: str) -> dict[str, Any]:
        if bucket_size not in BUCKET_SIZES:
            raise ValueError(f"bucket_size must be one of {', '.join(BUCKET_SIZES)}")
        if as_utc(end) <= as_utc(start):
            raise ValueError("billing: end must be after start")
        return {"startTime": rfc3339(start), "endTime": rfc3339(end), "bucketSize": bucket_size}

    @staticmethod
    def _records(data: object, op: str) -> tuple[list[Any], dict[str, Any]]:
        if isinstance(data, list):
            return data, {}
        r = Reader(data, op, "the billing report")
        meta = r.data.get("metadata")
        totals = meta.get("totals") if isinstance(meta, dict) else None
        if totals is not None and not isinstance(totals, dict):
            raise BadResponse(f"{op}: metadata.totals is not an object — the API may have changed")
        return r.items("records"), dict(totals or {})


def _endpoint_missing(endpoint_id: str) -> str:
    return f"endpoint {endpoint_id} not found — check the id in console.toml"


def _volume_missing(volume_id: str) -> str:
    return f"network volume {volume_id} not found — check [volume] id in console.toml"
