"""The admin listener: health, readiness, metrics, the quarantine and incident APIs.

Never proxied. `/quarantine` and `/incident/...` (vigie.incident.admin_routes) need
`Authorization: Bearer <admin token>` (from `admin.token_file`); without a configured
token the endpoints are disabled (404).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vigie.guard import Guard
from vigie.incident.admin_routes import PrincipalOf, incident_routes
from vigie.incident.registry import Incidents
from vigie.telemetry.metrics import Metrics


def read_admin_token(path: Path | None) -> str | None:
    if path is None:
        return None
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ValueError("the admin token must hold at least 16 characters")
    return token


def create_admin_app(metrics: Metrics, guard: Guard, admin_token: str | None,
                     is_ready: Callable[[], bool], incidents: Incidents | None = None,
                     principal_of: PrincipalOf | None = None) -> Starlette:
    def authorized(request: Request) -> Response | None:
        if admin_token is None:
            return JSONResponse({"detail": "admin API disabled: no admin.token_file"}, 404)
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 admin_token.encode()):
            return JSONResponse({"detail": "admin token required"}, 401,
                                headers={"WWW-Authenticate": 'Bearer realm="vigie-admin"'})
        return None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if is_ready():
            return PlainTextResponse("ready")
        return PlainTextResponse("not ready", status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def list_quarantines(request: Request) -> Response:
        refused = authorized(request)
        if refused is not None:
            return refused
        return JSONResponse(await guard.quarantines())

    async def lift_quarantine(request: Request) -> Response:
        refused = authorized(request)
        if refused is not None:
            return refused
        lifted = await guard.lift(request.path_params["client"], request.path_params["subject"])
        if not lifted:
            return JSONResponse({"detail": "no such quarantine"}, 404)
        return Response(status_code=204)

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/quarantine", list_quarantines, methods=["GET"]),
        Route("/quarantine/{client}/{subject}", lift_quarantine, methods=["DELETE"]),
        *(incident_routes(incidents, authorized, admin_token, principal_of)
          if incidents is not None else ()),
    ])
