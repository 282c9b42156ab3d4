"""Job API routes, /v2/{endpoint_id}/…: run, runsync, status, stream, cancel, retry, purge-queue, health.

Bodies, status codes and field names follow reference runpod-api.md §1.
"""
from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from lib.localpod.models import Endpoint, Job
from lib.localpod.ratelimit import JOB_API_LIMITS, take
from lib.localpod.routes.auth import require_key, simulator
from lib.localpod.routes.errors import ApiError

# RunPod's documented payload limits (reference §1.7). The reference could not confirm whether an
# oversized body gets 413 or 400; 413 is the precise code and what a client should expect to map.
MAX_RUN_BYTES = 10_000_000
MAX_RUNSYNC_BYTES = 20_000_000
RUNSYNC_DEFAULT_WAIT_MS = 90_000
RUNSYNC_WAIT_RANGE_MS = (1_000, 300_000)

router = APIRouter(prefix="/v2/{endpoint_id}", dependencies=[Depends(require_key)])


def endpoint_for(op: str) -> Callable[[Request, str], Endpoint]:
    """Dependency: the addressed endpoint, after the simulator's state, faults and rate limits."""
    def guard(request: Request, endpoint_id: str) -> Endpoint:
        sim = simulator(request)
        ep = sim.endpoints.get(endpoint_id)
        if ep is None:
            raise ApiError(404, f"endpoint {endpoint_id} not found")
        if sim.closing:
            raise ApiError(503, "the simulator is shutting down; retry against its next start")
        faults = ep.faults
        if faults.http_5xx_rate and sim.rng.random() < faults.http_5xx_rate:
            raise ApiError(503, "service unavailable (injected by localpod fault http_5xx_rate)")
        if faults.http_429_rate and sim.rng.random() < faults.http_429_rate:
            raise ApiError(429, "too many requests (injected by localpod fault http_429_rate)",
                           {"Retry-After": "1"})
        limit = JOB_API_LIMITS.get(op)
        if limit and sim.rate_limits:
            hits = ep.hits.setdefault(op, deque())
            retry_after = take(hits, limit, time.time())
            if retry_after is not None:
                raise ApiError(429, f"rate limit exceeded: {op} allows {limit} requests per 10 s "
                                    f"per endpoint; retry in {retry_after} s",
                               {"Retry-After": str(retry_after)})
        return ep
    return guard


def job_or_404(request: Request, ep: Endpoint, job_id: str) -> Job:
    job = simulator(request).find(ep, job_id)
    if job is None:
        raise ApiError(404, f"job {job_id} not found on endpoint {ep.id} (unknown, expired or past its ttl)")
    return job


async def read_submission(request: Request, limit: int, route: str) -> dict:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_large(int(declared), limit, route))
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, too_large(len(raw), limit, route))
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, f"{route}: the body is not valid JSON") from None
    if not isinstance(body, dict) or body.get("input") is None:
        raise ApiError(400, f'{route}: the body must be a JSON object with an "input" field, '
                            'e.g. {"input": {...}}')
    return body


def too_large(size: int, limit: int, route: str) -> str:
    return (f"{route}: request body is {size:,} bytes, over RunPod's {limit:,}-byte limit; put "
            "large inputs (images, datasets) on the network volume or in object storage and "
            "pass their path or URL instead")


def submission_options(body: dict, route: str) -> dict:
    webhook = body.get("webhook")
    if webhook is not None and (not isinstance(webhook, str)
                                or not webhook.startswith(("http://", "https://"))):
        raise ApiError(400, f"{route}: webhook must be an http(s) URL")
    policy = body.get("policy") or {}
    if not isinstance(policy, dict):
        raise ApiError(400, f"{route}: policy must be an object")
    opts = {"webhook": webhook, "low_priority": policy.get("lowPriority", False)}
    if not isinstance(opts["low_priority"], bool):
        raise ApiError(400, f"{route}: policy.lowPriority must be true or false")
    for field, key in (("executionTimeout", "execution_timeout_ms"), ("ttl", "ttl_ms")):
        value = policy.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ApiError(400, f"{route}: policy.{field} must be a positive whole number of milliseconds")
        opts[key] = value
    return opts


def positive_int_query(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"?{name}= must be a whole number of milliseconds") from None
    if value <= 0:
        raise ApiError(400, f"?{name}= must be positive")
    return value


@router.post("/run")
async def run(request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("run"))]):
    body = await read_submission(request, MAX_RUN_BYTES, "/run")
    job = simulator(request).submit(ep, body["input"], sync=False, **submission_options(body, "/run"))
    # A warm worker may already have taken it; RunPod's answer to /run is always IN_QUEUE.
    return JSONResponse({"id": job.id, "status": "IN_QUEUE"})


@router.post("/runsync")
async def runsync(request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("runsync"))]):
    sim = simulator(request)
    wait_ms = positive_int_query(request, "wait") or RUNSYNC_DEFAULT_WAIT_MS
    wait_ms = min(max(wait_ms, RUNSYNC_WAIT_RANGE_MS[0]), RUNSYNC_WAIT_RANGE_MS[1])
    body = await read_submission(request, MAX_RUNSYNC_BYTES, "/runsync")
    job = sim.submit(ep, body["input"], sync=True, **submission_options(body, "/runsync"))
    await sim.wait(job, wait_ms / 1000)
    # When the wait expires the current state goes back (IN_QUEUE/IN_PROGRESS): poll /status.
    return JSONResponse(job_or_404(request, ep, job.id).body(time.time()))


@router.api_route("/status/{job_id}", methods=["GET", "POST"])
async def status(job_id: str, request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("status"))]):
    job = job_or_404(request, ep, job_id)
    ttl = positive_int_query(request, "ttl") if request.query_params else None
    if ttl is not None:
        simulator(request).set_retention(job, ttl)
    return JSONResponse(job.body(time.time()))


@router.api_route("/stream/{job_id}", methods=["GET", "POST"])
async def stream(job_id: str, request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("stream"))]):
    job = job_or_404(request, ep, job_id)
    out = {"id": job.id, "status": job.status}
    if job.delay_ms is not None:
        out["delayTime"] = job.delay_ms
    out["stream"] = [{"output": chunk} for chunk in simulator(request).stream_chunks(job)]
    return JSONResponse(out)


@router.post("/cancel/{job_id}")
async def cancel(job_id: str, request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("cancel"))]):
    return JSONResponse(simulator(request).cancel(ep, job_or_404(request, ep, job_id)))


@router.post("/retry/{job_id}")
async def retry(job_id: str, request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("retry"))]):
    job = job_or_404(request, ep, job_id)
    try:
        return JSONResponse(simulator(request).retry(ep, job))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


@router.post("/purge-queue")
async def purge_queue(request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("purge-queue"))]):
    return JSONResponse({"removed": simulator(request).purge(ep), "status": "completed"})


@router.get("/health")
async def health(request: Request, ep: Annotated[Endpoint, Depends(endpoint_for("health"))]):
    return JSONResponse(simulator(request).health(ep))
