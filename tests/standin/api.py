"""The stand-in's HTTP side: RunPod's job API (`/v2/{endpoint_id}/…`, reference §1) and REST v2
(`/rest/v2/…`, reference §3.2), as documented — not as the console's client expects them.

Bodies of 401/404 on the job API are not documented (reference §6.1): a short text body is sent.
REST v2 errors are RFC 9457 problem+json (reference §3.2).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from tests.standin.account import Account

WORKER_STATES = ("idle", "initializing", "ready", "running", "throttled", "unhealthy")


def _key(request: Request) -> str:
    value = request.headers.get("authorization", "")
    # Reference §1.1: Bearer or the raw key are both accepted.
    return value[7:] if value.lower().startswith("bearer ") else value


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse({"title": title, "status": status, "detail": detail}, status_code=status,
                        media_type="application/problem+json")


def make_app(account: Account) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if _key(request) != account.api_key:
            if request.url.path.startswith("/rest/"):
                return _problem(401, "Unauthorized", "invalid API key")
            return PlainTextResponse("Unauthorized", status_code=401)
        return await call_next(request)

    # ------------------------------------------------------------------ job API (§1.2)

    def endpoint_or_404(endpoint_id: str):
        return None if endpoint_id in account.endpoints else PlainTextResponse("Not Found", status_code=404)

    @app.post("/v2/{endpoint_id}/run")
    async def run(endpoint_id: str, request: Request):
        if (missing := endpoint_or_404(endpoint_id)) is not None:
            return missing
        body = await request.json()
        if not isinstance(body, dict) or "input" not in body:
            return PlainTextResponse("input is required", status_code=400)
        job_id = account.enqueue(endpoint_id, 1, body)[0]
        return {"id": job_id, "status": "IN_QUEUE"}

    @app.post("/v2/{endpoint_id}/runsync")
    async def runsync(endpoint_id: str, request: Request):
        if (missing := endpoint_or_404(endpoint_id)) is not None:
            return missing
        body = await request.json()
        job_id = account.enqueue(endpoint_id, 1, body)[0]
        with account.lock:
            job = account.jobs.pop(job_id)
            job["id"] = f"sync-{uuid.uuid4()}"
            account.jobs[job["id"]] = job
        # No worker ever takes it: the wait expires and the current state comes back (§1.6).
        return {"id": job["id"], "status": "IN_QUEUE"}

    @app.get("/v2/{endpoint_id}/status/{job_id}")
    async def status(endpoint_id: str, job_id: str):
        job = account.jobs.get(job_id)
        if job is None or job["endpoint"] != endpoint_id:
            return PlainTextResponse("Not Found", status_code=404)
        return {k: v for k, v in job.items() if k in ("id", "status", "output", "error", "delayTime",
                                                       "executionTime", "workerId")}

    @app.get("/v2/{endpoint_id}/stream/{job_id}")
    async def stream(endpoint_id: str, job_id: str):
        job = account.jobs.get(job_id)
        if job is None or job["endpoint"] != endpoint_id:
            return PlainTextResponse("Not Found", status_code=404)
        return {"id": job_id, "status": job["status"], "stream": []}

    @app.post("/v2/{endpoint_id}/cancel/{job_id}")
    async def cancel(endpoint_id: str, job_id: str):
        with account.lock:
            job = account.jobs.get(job_id)
            if job is None or job["endpoint"] != endpoint_id:
                return PlainTextResponse("Not Found", status_code=404)
            job["status"] = "CANCELLED"
        return {"id": job_id, "status": "CANCELLED"}

    @app.post("/v2/{endpoint_id}/purge-queue")
    async def purge(endpoint_id: str):
        if (missing := endpoint_or_404(endpoint_id)) is not None:
            return missing
        with account.lock:
            queued = [j for j, v in account.jobs.items() if v["endpoint"] == endpoint_id and v["status"] == "IN_QUEUE"]
            for job_id in queued:
                del account.jobs[job_id]
        return {"removed": len(queued), "status": "completed"}

    @app.get("/v2/{endpoint_id}/health")
    async def health(endpoint_id: str):
        if (missing := endpoint_or_404(endpoint_id)) is not None:
            return missing
        return {"jobs": account.counts(endpoint_id), "workers": {state: 0 for state in WORKER_STATES}}

    # ------------------------------------------------------------------ REST v2 (§3.2)

    @app.get("/rest/v2/serverless")
    async def endpoints():
        return {"endpoints": list(account.endpoints.values())}

    @app.get("/rest/v2/serverless/{endpoint_id}")
    async def endpoint(endpoint_id: str):
        if endpoint_id not in account.endpoints:
            return _problem(404, "Not Found", f"endpoint {endpoint_id} not found")
        return account.endpoints[endpoint_id]

    @app.get("/rest/v2/serverless/{endpoint_id}/workers")
    async def workers(endpoint_id: str):
        if endpoint_id not in account.endpoints:
            return _problem(404, "Not Found", f"endpoint {endpoint_id} not found")
        return {"workers": [], "summary": {"running": 0, "idle": 0, "initializing": 0, "throttled": 0,
                                           "unhealthy": 0, "total": 0}, "endpointVersion": 1}

    @app.get("/rest/v2/network-volumes")
    async def volumes():
        return {"networkVolumes": list(account.volumes.values())}

    @app.get("/rest/v2/network-volumes/{volume_id}")
    async def volume(volume_id: str):
        if volume_id not in account.volumes:
            return _problem(404, "Not Found", f"network volume {volume_id} not found")
        return account.volumes[volume_id]

    @app.get("/rest/v2/billing/serverless")
    async def billing_serverless(startTime: str | None = None, endTime: str | None = None,
                                 bucketSize: str = "day", serverlessId: str | None = None):
        end = _time(endTime) or datetime.now(timezone.utc)
        start = _time(startTime) or end - timedelta(days=30)
        query = {"startTime": _iso(start), "endTime": _iso(end), "bucketSize": bucketSize}
        totals = {"totalAmount": 0.0, "gpuAmount": 0.0, "cpuAmount": 0.0, "diskAmount": 0.0, "feeAmount": 0.0}
        return {"records": [], "metadata": {"query": query, "recordCount": 0, "uniqueServerlessCount": 0,
                                            "totals": totals}}

    @app.get("/rest/v2/billing/network-volumes")
    async def billing_volumes():
        return {"records": [], "metadata": {"recordCount": 0}}

    return app


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


