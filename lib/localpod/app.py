"""HTTP surface of the simulator: job API (/v2/{endpoint_id}/...), REST v2 (/rest/v2/...), admin.

Bodies, status codes and field names follow reference/runpod-api.md. Job-API errors are
`{"error": "..."}` (RunPod does not document its error bodies, reference §6.1); REST errors are
RFC 9457 problem+json like REST v2.
"""
from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lib.localpod import billing
from lib.localpod.models import Endpoint, Job
from lib.localpod.ratelimit import JOB_API_LIMITS, take
from lib.localpod.scheduler import Simulator

# RunPod's documented payload limits (reference §1.7). The reference could not confirm whether an
# oversized body gets 413 or 400; 413 is the precise code and what a client should expect to map.
MAX_RUN_BYTES = 10_000_000
MAX_RUNSYNC_BYTES = 20_000_000
RUNSYNC_DEFAULT_WAIT_MS = 90_000
RUNSYNC_WAIT_RANGE_MS = (1_000, 300_000)
BILLING_DEFAULT_DAYS = 30


class ApiError(Exception):
    """A job-API or admin error: JSON body {"error": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Problem(Exception):
    """A REST v2 error: application/problem+json {title, status, detail}."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def _problem_response(p: Problem, extra: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"title": p.title, "status": p.status, "detail": p.detail}),
                    status_code=p.status, media_type="application/problem+json",
                    headers={**(extra or {}), **p.headers})


def build_app(sim: Simulator, api_key: str | None,
              seed_info: Callable[[], dict | None]) -> FastAPI:
    """The ASGI app around one Simulator. api_key None: any non-empty key is accepted."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await sim.start()
        yield
        await sim.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization")
        if not header:
            return False
        token = header[7:] if header[:7].lower() == "bearer " else header
        token = token.strip()
        if not token:
            return False
        return api_key is None or hmac.compare_digest(token.encode(), api_key.encode())

    # ---------------------------------------------------------------- errors

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return _problem_response(exc, getattr(request.state, "rate_headers", None))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/rest/"):
            return _problem_response(Problem(exc.status_code, HTTPStatus(exc.status_code).phrase,
                                             f"{request.method} {request.url.path}: {exc.detail}"))
        return JSONResponse({"error": f"{request.method} {request.url.path}: {exc.detail}"},
                            status_code=exc.status_code)

    # ---------------------------------------------------------------- job API

    def guard(request: Request, endpoint_id: str, op: str) -> Endpoint:
        if not authorized(request):
            raise ApiError(401, "unauthorized: send a valid API key as 'Authorization: Bearer <key>'")
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
            hits = ep.hits.get(op)
            if hits is None:
                hits = ep.hits[op] = deque()
            retry_after = take(hits, limit, time.time())
            if retry_after is not None:
                raise ApiError(429, f"rate limit exceeded: {op} allows {limit} requests per 10 s "
                                    f"per endpoint; retry in {retry_after} s",
                               {"Retry-After": str(retry_after)})
        return ep

    def job_or_404(ep: Endpoint, job_id: str) -> Job:
        job = sim.find(ep, job_id)
        if job is None:
            raise ApiError(404, f"job {job_id} not found on endpoint {ep.id} (unknown, expired or "
                                "past its ttl)")
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
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise ApiError(400, f"{route}: policy.{field} must be a positive whole number of "
                                    "milliseconds")
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

    @app.post("/v2/{endpoint_id}/run")
    async def run(endpoint_id: str, request: Request):
        ep = guard(request, endpoint_id, "run")
        body = await read_submission(request, MAX_RUN_BYTES, "/run")
        job = sim.submit(ep, body["input"], sync=False, **submission_options(body, "/run"))
        # A warm worker may already have taken it; RunPod's answer to /run is always IN_QUEUE.
        return JSONResponse({"id": job.id, "status": "IN_QUEUE"})

    @app.post("/v2/{endpoint_id}/runsync")
    async def runsync(endpoint_id: str, request: Request):
        ep = guard(request, endpoint_id, "runsync")
        wait_ms = positive_int_query(request, "wait") or RUNSYNC_DEFAULT_WAIT_MS
        wait_ms = min(max(wait_ms, RUNSYNC_WAIT_RANGE_MS[0]), RUNSYNC_WAIT_RANGE_MS[1])
        body = await read_submission(request, MAX_RUNSYNC_BYTES, "/runsync")
        job = sim.submit(ep, body["input"], sync=True, **submission_options(body, "/runsync"))
        await sim.wait(job, wait_ms / 1000)
        # When the wait expires the current state goes back (IN_QUEUE/IN_PROGRESS): poll /status.
        return JSONResponse(job_or_404(ep, job.id).body(time.time()))

    @app.api_route("/v2/{endpoint_id}/status/{job_id}", methods=["GET", "POST"])
    async def status(endpoint_id: str, job_id: str, request: Request):
        ep = guard(request, endpoint_id, "status")
        job = job_or_404(ep, job_id)
        ttl = positive_int_query(request, "ttl") if request.query_params else None
        if ttl is not None:
            sim.set_retention(job, ttl)
        return JSONResponse(job.body(time.time()))

    @app.api_route("/v2/{endpoint_id}/stream/{job_id}", methods=["GET", "POST"])
    async def stream(endpoint_id: str, job_id: str, request: Request):
        ep = guard(request, endpoint_id, "stream")
        job = job_or_404(ep, job_id)
        out = {"id": job.id, "status": job.status}
        if job.delay_ms is not None:
            out["delayTime"] = job.delay_ms
        out["stream"] = [{"output": chunk} for chunk in sim.stream_chunks(job)]
        return JSONResponse(out)

    @app.post("/v2/{endpoint_id}/cancel/{job_id}")
    async def cancel(endpoint_id: str, job_id: str, request: Request):
        ep = guard(request, endpoint_id, "cancel")
        return JSONResponse(sim.cancel(ep, job_or_404(ep, job_id)))

    @app.post("/v2/{endpoint_id}/retry/{job_id}")
    async def retry(endpoint_id: str, job_id: str, request: Request):
        ep = guard(request, endpoint_id, "retry")
        job = job_or_404(ep, job_id)
        try:
            return JSONResponse(sim.retry(ep, job))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    @app.post("/v2/{endpoint_id}/purge-queue")
    async def purge_queue(endpoint_id: str, request: Request):
        ep = guard(request, endpoint_id, "purge-queue")
        return JSONResponse({"removed": sim.purge(ep), "status": "completed"})

    @app.get("/v2/{endpoint_id}/health")
    async def health(endpoint_id: str, request: Request):
        ep = guard(request, endpoint_id, "health")
        return JSONResponse(sim.health(ep))

    # ---------------------------------------------------------------- REST v2

    def rest_guard(request: Request) -> None:
        if not authorized(request):
            raise Problem(401, "Unauthorized", "missing or invalid API key; send "
                                               "'Authorization: Bearer <key>'")
        retry_after, headers = sim.rest_quota.take(time.time()) if sim.rate_limits else (None, {})
        request.state.rate_headers = headers
        if retry_after is not None:
            raise Problem(429, "Too Many Requests",
                          f"REST API rate limit reached; retry in {retry_after} s",
                          {"Retry-After": str(retry_after)})

    def rest(request: Request, payload: dict) -> Response:
        return JSONResponse(payload, headers=request.state.rate_headers)

    def endpoint_or_404(endpoint_id: str) -> Endpoint:
        ep = sim.endpoints.get(endpoint_id)
        if ep is None:
            raise Problem(404, "Not Found", f"serverless endpoint {endpoint_id} not found")
        return ep

    def endpoint_view(ep: Endpoint, request: Request) -> dict:
        base = f"{str(request.base_url).rstrip('/')}/v2/{ep.id}"
        if ep.scaling_type == "QUEUE_DELAY":
            value = ep.scaling_value
            scaling = {"type": "QUEUE_DELAY",
                       "queueDelay": int(value) if value == int(value) else value}
        else:
            scaling = {"type": "REQUEST_COUNT", "requestCount": int(ep.scaling_value)}
        extras = sim.endpoint_extras(ep)
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

    async def json_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise Problem(400, "Bad Request", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Problem(400, "Bad Request", "the body must be a JSON object")
        return body

    @app.post("/rest/v2/serverless")
    async def create_endpoint(request: Request):
        rest_guard(request)
        body = await json_body(request)
        try:
            ep = sim.create_endpoint(body)
        except ValueError as exc:
            raise Problem(400, "Bad Request", str(exc)) from None
        return JSONResponse(endpoint_view(ep, request), status_code=201,
                            headers=request.state.rate_headers)

    @app.delete("/rest/v2/serverless/{endpoint_id}")
    async def delete_endpoint(endpoint_id: str, request: Request):
        rest_guard(request)
        try:
            sim.delete_endpoint(endpoint_or_404(endpoint_id))
        except ValueError as exc:
            raise Problem(400, "Bad Request", str(exc)) from None
        return Response(status_code=204, headers=request.state.rate_headers)

    @app.get("/rest/v2/serverless")
    async def list_endpoints(request: Request):
        rest_guard(request)
        return rest(request, {"endpoints": [endpoint_view(ep, request)
                                            for ep in sim.endpoints.values()]})

    @app.get("/rest/v2/serverless/{endpoint_id}")
    async def get_endpoint(endpoint_id: str, request: Request):
        rest_guard(request)
        return rest(request, endpoint_view(endpoint_or_404(endpoint_id), request))

    @app.patch("/rest/v2/serverless/{endpoint_id}")
    async def patch_endpoint(endpoint_id: str, request: Request):
        rest_guard(request)
        ep = endpoint_or_404(endpoint_id)
        changes = await json_body(request)
        writable = {"name", "workers", "scaling", "timeout", "flashboot", "gpu", "image", "env",
                    "dataCenterIds", "networkVolumes", "disk"}
        unknown = sorted(set(changes) - writable)
        if unknown:
            raise Problem(400, "Bad Request", f"{unknown[0]} is not a writable field (writable: "
                                              f"{', '.join(sorted(writable))})")
        try:
            sim.update_endpoint(ep, changes)
        except ValueError as exc:
            raise Problem(400, "Bad Request", str(exc)) from None
        return rest(request, endpoint_view(ep, request))

    @app.get("/rest/v2/serverless/{endpoint_id}/workers")
    async def endpoint_workers(endpoint_id: str, request: Request):
        rest_guard(request)
        return rest(request, sim.workers_view(endpoint_or_404(endpoint_id)))

    def volume_view(volume: dict) -> dict:
        return {k: volume[k] for k in ("id", "name", "size", "dataCenter", "type")}

    def volume_or_404(volume_id: str) -> dict:
        volume = sim.volumes.get(volume_id)
        if volume is None:
            raise Problem(404, "Not Found", f"network volume {volume_id} not found")
        return volume

    @app.get("/rest/v2/network-volumes")
    async def list_volumes(request: Request):
        rest_guard(request)
        volumes = sorted(sim.volumes.values(), key=lambda v: v["createdAt"])
        return rest(request, {"networkVolumes": [volume_view(v) for v in volumes]})

    @app.post("/rest/v2/network-volumes")
    async def create_volume(request: Request):
        rest_guard(request)
        body = await json_body(request)
        try:
            volume = sim.create_volume(body)
        except ValueError as exc:
            raise Problem(400, "Bad Request", str(exc)) from None
        return JSONResponse(volume_view(volume), status_code=201, headers=request.state.rate_headers)

    @app.get("/rest/v2/network-volumes/{volume_id}")
    async def get_volume(volume_id: str, request: Request):
        rest_guard(request)
        return rest(request, volume_view(volume_or_404(volume_id)))

    @app.patch("/rest/v2/network-volumes/{volume_id}")
    async def patch_volume(volume_id: str, request: Request):
        rest_guard(request)
        volume = volume_or_404(volume_id)
        try:
            return rest(request, volume_view(sim.update_volume(volume, await json_body(request))))
        except ValueError as exc:
            raise Problem(400, "Bad Request", str(exc)) from None

    def billing_window(request: Request) -> tuple[datetime, datetime, str]:
        size = request.query_params.get("bucketSize", "day")
        if size not in billing.BUCKET_SIZES:
            raise Problem(400, "Bad Request",
                          f"bucketSize must be one of {', '.join(billing.BUCKET_SIZES)}")
        now = datetime.now(UTC)
        end = parse_time(request, "endTime") or now
        start = parse_time(request, "startTime") or end - timedelta(days=BILLING_DEFAULT_DAYS)
        start = billing.bucket_floor(start, size)
        if start >= end:
            raise Problem(400, "Bad Request", "startTime must be before endTime")
        return start, end, size

    def parse_time(request: Request, name: str) -> datetime | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise Problem(400, "Bad Request", f"{name} must be an RFC 3339 time such as "
                                              "2026-07-01T00:00:00Z") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def query_meta(request: Request, start: datetime, end: datetime, size: str) -> dict:
        query = {"startTime": billing.rfc3339(start), "endTime": billing.rfc3339(end),
                 "bucketSize": size}
        for extra in ("serverlessId", "networkVolumeId"):
            if extra in request.query_params:
                query[extra] = request.query_params[extra]
        return query

    @app.get("/rest/v2/billing/serverless")
    async def billing_serverless(request: Request):
        rest_guard(request)
        start, end, size = billing_window(request)
        endpoint_id = request.query_params.get("serverlessId")
        rows = sim.billing_hours(start.timestamp(), end.timestamp(), endpoint_id)
        report = billing.serverless_report(rows, size)
        return rest(request, {"records": report.records, "metadata": {
            "query": query_meta(request, start, end, size), "recordCount": len(report.records),
            "uniqueServerlessCount": len({r["serverlessId"] for r in report.records}),
            "totals": report.totals}})

    @app.get("/rest/v2/billing/network-volumes")
    async def billing_volumes(request: Request):
        rest_guard(request)
        start, end, size = billing_window(request)
        wanted = request.query_params.get("networkVolumeId")
        records, totals = [], {"totalAmount": 0.0, "standardAmount": 0.0, "highPerformanceAmount": 0.0}
        for v in sim.volumes.values():
            if wanted not in (None, v["id"]):
                continue
            report = billing.volume_report(v["id"], v["size"], sim.config.prices.volume_usd_per_gb_month,
                                           datetime.fromtimestamp(v["createdAt"], UTC), start, end, size)
            records += report.records
            totals = {k: round(totals[k] + report.totals[k], billing.DIGITS) for k in totals}
        records.sort(key=lambda r: (r["startTime"], r["networkVolumeId"]))
        return rest(request, {"records": records, "metadata": {
            "query": query_meta(request, start, end, size), "recordCount": len(records),
            "totals": totals}})

    # ---------------------------------------------------------------- admin (tests, demos)

    def admin_guard(request: Request) -> None:
        if not authorized(request):
            raise ApiError(401, "unauthorized: send a valid API key as 'Authorization: Bearer <key>'")

    async def json_object(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def admin_endpoint(endpoint_id: str) -> Endpoint:
        ep = sim.endpoints.get(endpoint_id)
        if ep is None:
            raise ApiError(404, f"endpoint {endpoint_id} not found")
        return ep

    @app.get("/admin/faults/{endpoint_id}")
    async def get_faults(endpoint_id: str, request: Request):
        admin_guard(request)
        return JSONResponse(admin_endpoint(endpoint_id).faults.to_dict())

    @app.put("/admin/faults/{endpoint_id}")
    async def put_faults(endpoint_id: str, request: Request):
        """Merge the given fields into the endpoint's faults (unnamed ones keep their value)."""
        admin_guard(request)
        ep = admin_endpoint(endpoint_id)
        changes = await json_object(request)
        unknown = sorted(set(changes) - set(ep.faults.to_dict()))
        if unknown:
            raise ApiError(400, f"unknown fault {unknown[0]!r} (known: "
                                f"{', '.join(ep.faults.to_dict())})")
        try:
            return JSONResponse(sim.set_faults(ep, changes).to_dict())
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    def settings_view() -> dict:
        return {"run_retention_s": sim.run_retention_s,
                "runsync_retention_s": sim.runsync_retention_s, "time_scale": sim.time_scale,
                "webhook_retry_s": sim.webhook_retry_s, "rate_limits": sim.rate_limits,
                "rest_requests_per_minute": sim.rest_quota.per_minute,
                "worker_quota": sim.worker_quota}

    @app.get("/admin/settings")
    async def get_settings(request: Request):
        admin_guard(request)
        return JSONResponse(settings_view())

    @app.put("/admin/settings")
    async def put_settings(request: Request):
        """Change simulator knobs; applies to jobs and workers from now on."""
        admin_guard(request)
        changes = await json_object(request)
        unknown = sorted(set(changes) - set(settings_view()))
        if unknown:
            raise ApiError(400, f"unknown setting {unknown[0]!r} (known: "
                                f"{', '.join(settings_view())})")
        for key, value in changes.items():
            if key == "rate_limits":
                if not isinstance(value, bool):
                    raise ApiError(400, "rate_limits must be true or false")
            elif key == "worker_quota":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                          or value < 0):
                    raise ApiError(400, "worker_quota must be a whole number >= 0, or null for no quota")
            elif key == "rest_requests_per_minute":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ApiError(400, "rest_requests_per_minute must be a whole number >= 1")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or (key == "time_scale" and value == 0):
                raise ApiError(400, f"{key} must be a positive number")
        for key, value in changes.items():
            if key == "rest_requests_per_minute":
                sim.rest_quota.per_minute = value
            elif key in ("rate_limits", "worker_quota"):
                setattr(sim, key, value)
            else:
                setattr(sim, key, float(value))
        return JSONResponse(settings_view())

    @app.get("/admin/jobs")
    async def admin_jobs(request: Request):
        admin_guard(request)
        return JSONResponse({"jobs": sim.jobs_view(request.query_params.get("endpoint_id"))})

    @app.get("/admin/seed")
    async def admin_seed(request: Request):
        """How the demo history was generated (null when not seeded): {now, days, seed}."""
        admin_guard(request)
        return JSONResponse(seed_info())

    return app
