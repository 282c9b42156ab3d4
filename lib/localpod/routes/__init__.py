"""The simulator's HTTP surface: one FastAPI app with three routers (jobs, REST v2, admin).

The API-key check is a dependency of each router (routes/auth.py); errors keep each API's own
shape (routes/errors.py).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lib.localpod.routes import admin, jobs, rest
from lib.localpod.routes.errors import ApiError, Problem
from lib.localpod.simulator import Simulator


def build_app(sim: Simulator, api_key: str | None, seed_info: Callable[[], dict | None]) -> FastAPI:
    """The ASGI app around one Simulator. api_key None: any non-empty key is accepted."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await sim.start()
        yield
        await sim.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim, app.state.api_key, app.state.seed_info = sim, api_key, seed_info
    for module in (jobs, rest, admin):
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return exc.response(getattr(request.state, "rate_headers", None))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        where = f"{request.method} {request.url.path}: {exc.detail}"
        if request.url.path.startswith("/rest/"):
            return Problem(exc.status_code, HTTPStatus(exc.status_code).phrase, where).response()
        return JSONResponse({"error": where}, status_code=exc.status_code)

    return app
