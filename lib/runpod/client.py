"""RunPod: one object per account, one pooled httpx.Client for every route it reaches."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from lib.config import DEFAULT_API_URL, DEFAULT_REST_URL, EndpointSpec, Secret, Settings
from lib.runpod.devworker import DevWorkerJobs
from lib.runpod.http import HttpCore
from lib.runpod.jobs import EndpointJobs
from lib.runpod.rest import RestV2


class RunPod:
    """Thread-safe: a tracker thread and several Streamlit sessions share one instance.

    The API key goes only to RunPod routes (job API and REST), never to a dev worker, and never
    appears in repr, messages or error bodies.
    """

    def __init__(self, api_key: str | Secret | None, *, api_url: str = DEFAULT_API_URL,
                 rest_url: str = DEFAULT_REST_URL, timeout: httpx.Timeout | None = None,
                 limits: httpx.Limits | None = None, max_retries: int = 3, retry_cap_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 event_hooks: Mapping[str, list[Any]] | None = None):
        key = api_key.reveal() if isinstance(api_key, Secret) else (api_key or "")
        self.api_url = api_url.rstrip("/")
        self.rest_url = rest_url.rstrip("/")
        self._core = HttpCore(key, timeout=timeout, limits=limits, max_retries=max_retries,
                              retry_cap_s=retry_cap_s, transport=transport, sleep=sleep, clock=clock,
                              event_hooks=event_hooks)
        self._lock = threading.Lock()
        self._endpoints: dict[str, EndpointJobs] = {}
        self._dev_workers: dict[str, DevWorkerJobs] = {}
        self._rest = RestV2(self._core, self.rest_url)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RunPod:
        kwargs: dict[str, Any] = dict(api_url=settings.api_url, rest_url=settings.rest_url)
        kwargs.update(overrides)
        return cls(settings.api_key, **kwargs)

    def __repr__(self) -> str:
        return f"RunPod(api_url={self.api_url!r}, rest_url={self.rest_url!r}, api_key=***)"

    def endpoint(self, endpoint_id: str) -> EndpointJobs:
        with self._lock:
            jobs = self._endpoints.get(endpoint_id)
            if jobs is None:
                jobs = self._endpoints[endpoint_id] = EndpointJobs(self._core, self.api_url, endpoint_id)
            return jobs

    def dev_worker(self, url: str) -> DevWorkerJobs:
        # One instance per URL: it remembers finished results the dev worker itself forgets.
        key = url.rstrip("/")
        with self._lock:
            jobs = self._dev_workers.get(key)
            if jobs is None:
                jobs = self._dev_workers[key] = DevWorkerJobs(self._core, key)
            return jobs

    def for_spec(self, spec: EndpointSpec) -> EndpointJobs | DevWorkerJobs:
        if spec.id:
            return self.endpoint(spec.id)
        if spec.url:
            return self.dev_worker(spec.url)
        raise ValueError(f"[endpoints.{spec.role}] has neither id nor url — set one in console.toml")

    @property
    def rest(self) -> RestV2:
        return self._rest

    @property
    def http(self) -> httpx.Client:
        """The pooled client, for instrumentation (event hooks) only."""
        return self._core.client

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> RunPod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
