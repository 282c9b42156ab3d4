"""REST v2 routes, /rest/v2/…: serverless endpoints, their workers, network volumes, billing.

Shapes follow reference runpod-api.md §3; errors are problem+json (routes/errors.Problem).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from lib.localpod import billing
from lib.localpod.models import Endpoint
from lib.localpod.routes.auth import require_rest_key, simulator
from lib.localpod.routes.errors import Problem, json_object

BILLING_DEFAULT_DAYS = 30
WRITABLE_ENDPOINT_FIELDS = {"name", "workers", "scaling", "timeout", "flashboot", "gpu", "image", "env",
                            "dataCenterIds", "networkVolumes", "disk"}

router = APIRouter(prefix="/rest/v2", dependencies=[Depends(require_rest_key)])


def bad_request(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail)


def attempt(change: Callable, *args):
    """Apply a change to the simulated account; its ValueError is the client's 400."""
    try:
        return change(*args)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def rest(request: Request, payload: dict, status_code: int = 200) -> Response:
    return JSONResponse(payload, status_code=status_code, headers=request.state.rate_headers)


def endpoint_or_404(request: Request, endpoint_id: str) -> Endpoint:
    ep = simulator(request).endpoints.get(endpoint_id)
    if ep is None:
        raise Problem(404, "Not Found", f"serverless endpoint {endpoint_id} not found")
    return ep


def endpoint_view(ep: Endpoint, request: Request) -> dict:
    base = f"{str(request.base_url).rstrip('/')}/v2/{ep.id}"
    if ep.scaling_type == "QUEUE_DELAY":
        value = ep.scaling_value
        scaling = {"type": "QUEUE_DELAY", "queueDelay": int(value) if value == int(value) else value}
    else:
        scaling = {"type": "REQUEST_COUNT", "requestCount": int(ep.scaling_value)}
    extras = simulator(request).endpoint_extras(ep)
    workers = {"min": ep.workers_min, "max": ep.workers_max, "idleTimeout": ep.idle_timeout_s}
    if ep.scaling_type == "REQUEST_COUNT" and extras.get("created"):
        # v2 omits idleTimeout for queue endpoints scaling on requestCount.
        del workers["idleTimeout"]
    view = {
        "id": ep.id, "name": ep.name, "type": "QUEUE",
        "gpu": {"pools": list(ep.gpu_pools), "count": extras.get("gpuCount", 1),
                **{k: extras[k] for k in ("minCudaVersion", "allowedCudaVersions") if k in extras}},
        "workers": workers,
        "scaling": scaling, "timeout": ep.execution_timeout_ms, "flashboot": ep.flashboot,
        "dataCenterIds": list(extras.get("dataCenterIds", ())),
        "networkVolumes": list(extras.get("networkVolumes", ())),
        "image": ep.image, "env": dict(ep.env),
        "createdAt": datetime.fromtimestamp(ep.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requestUrls": {"run": f"{base}/run", "runSync": f"{base}/runsync",
                        "status": f"{base}/status", "stream": f"{base}/stream",
                        "cancel": f"{base}/cancel", "retry": f"{base}/retry",
                        "purgeQueue": f"{base}/purge-queue", "health": f"{base}/health"},
    }
    if "disk" in extras:
        view["disk"] = extras["disk"]
    return view


@router.post("/serverless")
async def create_endpoint(request: Request):
    ep = attempt(simulator(request).create_endpoint, await json_object(request, bad_request))
    return rest(request, endpoint_view(ep, request), status_code=201)


@router.delete("/serverless/{endpoint_id}")
async def delete_endpoint(endpoint_id: str, request: Request):
    attempt(simulator(request).delete_endpoint, endpoint_or_404(request, endpoint_id))
    return Response(status_code=204, headers=request.state.rate_headers)


@router.get("/serverless")
async def list_endpoints(request: Request):
    return rest(request, {"endpoints": [endpoint_view(ep, request)
                                        for ep in simulator(request).endpoints.values()]})


@router.get("/serverless/{endpoint_id}")
async def get_endpoint(endpoint_id: str, request: Request):
    return rest(request, endpoint_view(endpoint_or_404(request, endpoint_id), request))


@router.patch("/serverless/{endpoint_id}")
async def patch_endpoint(endpoint_id: str, request: Request):
    ep = endpoint_or_404(request, endpoint_id)
    changes = await json_object(request, bad_request)
    unknown = sorted(set(changes) - WRITABLE_ENDPOINT_FIELDS)
    if unknown:
        raise bad_request(f"{unknown[0]} is not a writable field (writable: "
                          f"{', '.join(sorted(WRITABLE_ENDPOINT_FIELDS))})")
    attempt(simulator(request).update_endpoint, ep, changes)
    return rest(request, endpoint_view(ep, request))


@router.get("/serverless/{endpoint_id}/workers")
async def endpoint_workers(endpoint_id: str, request: Request):
    return rest(request, simulator(request).workers_view(endpoint_or_404(request, endpoint_id)))


def volume_view(volume: dict) -> dict:
    return {k: volume[k] for k in ("id", "name", "size", "dataCenter", "type")}


def volume_or_404(request: Request, volume_id: str) -> dict:
    volume = simulator(request).volumes.get(volume_id)
    if volume is None:
        raise Problem(404, "Not Found", f"network volume {volume_id} not found")
    return volume


@router.get("/network-volumes")
async def list_volumes(request: Request):
    volumes = sorted(simulator(request).volumes.values(), key=lambda v: v["createdAt"])
    return rest(request, {"networkVolumes": [volume_view(v) for v in volumes]})


@router.post("/network-volumes")
async def create_volume(request: Request):
    volume = attempt(simulator(request).create_volume, await json_object(request, bad_request))
    return rest(request, volume_view(volume), status_code=201)


@router.get("/network-volumes/{volume_id}")
async def get_volume(volume_id: str, request: Request):
    return rest(request, volume_view(volume_or_404(request, volume_id)))


@router.patch("/network-volumes/{volume_id}")
async def patch_volume(volume_id: str, request: Request):
    volume = volume_or_404(request, volume_id)
    changed = attempt(simulator(request).update_volume, volume, await json_object(request, bad_request))
    return rest(request, volume_view(changed))


def billing_window(request: Request) -> tuple[datetime, datetime, str]:
    size = request.query_params.get("bucketSize", "day")
    if size not in billing.BUCKET_SIZES:
        raise bad_request(f"bucketSize must be one of {', '.join(billing.BUCKET_SIZES)}")
    end = parse_time(request, "endTime") or datetime.now(UTC)
    start = parse_time(request, "startTime") or end - timedelta(days=BILLING_DEFAULT_DAYS)
    start = billing.bucket_floor(start, size)
    if start >= end:
        raise bad_request("startTime must be before endTime")
    return start, end, size


def parse_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name} must be an RFC 3339 time such as 2026-07-01T00:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def query_meta(request: Request, start: datetime, end: datetime, size: str) -> dict:
    query = {"startTime": billing.rfc3339(start), "endTime": billing.rfc3339(end), "bucketSize": size}
    for extra in ("serverlessId", "networkVolumeId"):
        if extra in request.query_params:
            query[extra] = request.query_params[extra]
    return query


@router.get("/billing/serverless")
async def billing_serverless(request: Request):
    start, end, size = billing_window(request)
    endpoint_id = request.query_params.get("serverlessId")
    rows = simulator(request).billing_hours(start.timestamp(), end.timestamp(), endpoint_id)
    report = billing.serverless_report(rows, size)
    return rest(request, {"records": report.records, "metadata": {
        "query": query_meta(request, start, end, size), "recordCount": len(report.records),
        "uniqueServerlessCount": len({r["serverlessId"] for r in report.records}),
        "totals": report.totals}})


@router.get("/billing/network-volumes")
async def billing_volumes(request: Request):
    sim = simulator(request)
    start, end, size = billing_window(request)
    wanted = request.query_params.get("networkVolumeId")
    records, totals = [], {"totalAmount": 0.0, "standardAmount": 0.0, "highPerformanceAmount": 0.0}
    for v in sim.volumes.values():
        if wanted not in (None, v["id"]):
            continue
        report = billing.volume_report(v["id"], v["size"], sim.config.volume_usd_per_gb_month,
                                       datetime.fromtimestamp(v["createdAt"], UTC), start, end, size)
        records += report.records
        totals = {k: round(totals[k] + report.totals[k], billing.DIGITS) for k in totals}
    records.sort(key=lambda r: (r["startTime"], r["networkVolumeId"]))
    return rest(request, {"records": records, "metadata": {
        "query": query_meta(request, start, end, size), "recordCount": len(records), "totals": totals}})
