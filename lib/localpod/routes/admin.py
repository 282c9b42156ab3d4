"""Admin routes, /admin/…, for tests and demos: faults, simulator settings, jobs, the demo seed."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from lib.localpod.models import Endpoint
from lib.localpod.routes.auth import require_key, simulator
from lib.localpod.routes.errors import ApiError, json_object
from lib.localpod.simulator import Simulator

router = APIRouter(prefix="/admin", dependencies=[Depends(require_key)])


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def admin_endpoint(request: Request, endpoint_id: str) -> Endpoint:
    ep = simulator(request).endpoints.get(endpoint_id)
    if ep is None:
        raise ApiError(404, f"endpoint {endpoint_id} not found")
    return ep


@router.get("/faults/{endpoint_id}")
async def get_faults(endpoint_id: str, request: Request):
    return JSONResponse(admin_endpoint(request, endpoint_id).faults.to_dict())


@router.put("/faults/{endpoint_id}")
async def put_faults(endpoint_id: str, request: Request):
    """Merge the given fields into the endpoint's faults (unnamed ones keep their value)."""
    ep = admin_endpoint(request, endpoint_id)
    changes = await json_object(request, bad_request)
    unknown = sorted(set(changes) - set(ep.faults.to_dict()))
    if unknown:
        raise ApiError(400, f"unknown fault {unknown[0]!r} (known: {', '.join(ep.faults.to_dict())})")
    try:
        return JSONResponse(simulator(request).set_faults(ep, changes).to_dict())
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def settings_view(sim: Simulator) -> dict:
    return {"run_retention_s": sim.run_retention_s, "runsync_retention_s": sim.runsync_retention_s,
            "time_scale": sim.time_scale, "webhook_retry_s": sim.webhook_retry_s,
            "rate_limits": sim.rate_limits, "rest_requests_per_minute": sim.rest_quota.per_minute,
            "worker_quota": sim.worker_quota}


@router.get("/settings")
async def get_settings(request: Request):
    return JSONResponse(settings_view(simulator(request)))


def _setting_problem(key: str, value: object) -> str | None:
    if key == "rate_limits":
        return None if isinstance(value, bool) else "rate_limits must be true or false"
    if key == "worker_quota":
        if value is None or (not isinstance(value, bool) and isinstance(value, int) and value >= 0):
            return None
        return "worker_quota must be a whole number >= 0, or null for no quota"
    if key == "rest_requests_per_minute":
        if not isinstance(value, bool) and isinstance(value, int) and value >= 1:
            return None
        return "rest_requests_per_minute must be a whole number >= 1"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
            or (key == "time_scale" and value == 0):
        return f"{key} must be a positive number"
    return None


@router.put("/settings")
async def put_settings(request: Request):
    """Change simulator knobs; applies to jobs and workers from now on."""
    sim = simulator(request)
    changes = await json_object(request, bad_request)
    known = settings_view(sim)
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ApiError(400, f"unknown setting {unknown[0]!r} (known: {', '.join(known)})")
    for key, value in changes.items():
        problem = _setting_problem(key, value)
        if problem:
            raise ApiError(400, problem)
    for key, value in changes.items():
        if key == "rest_requests_per_minute":
            sim.rest_quota.per_minute = value
        elif key in ("rate_limits", "worker_quota"):
            setattr(sim, key, value)
        else:
            setattr(sim, key, float(value))
    return JSONResponse(settings_view(sim))


@router.get("/jobs")
async def admin_jobs(request: Request):
    return JSONResponse({"jobs": simulator(request).jobs_view(request.query_params.get("endpoint_id"))})


@router.get("/seed")
async def admin_seed(request: Request):
    """How the demo history was generated (null when not seeded): {now, days, seed}."""
    return JSONResponse(request.app.state.seed_info())
