"""The admin listener: health, readiness, metrics, the quarantine and incident APIs.

Never proxied. `/quarantine` and `/incident/...` (vigie.incident.admin_routes) need
`Authorization: Bearer <admin token>` (from `admin.token_file`); without a configured
token the endpoints are disabled (404).
`/metrics` is open unless `admin.metrics_auth` asks for a token (admin_auth.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vigie.admin_auth import bearer_matches, read_token
from vigie.guard import Guard
from vigie.incident.admin_routes import PrincipalOf, incident_routes
from vigie.incident.registry import Incidents
from vigie.telemetry.metrics import Metrics


def read_admin_token(path: Path | None) -> str | None:
    return read_token(path, "admin token")


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="vigie-admin"'}


def create_admin_app(metrics: Metrics, guard: Guard, admin_token: str | None,
                     is_ready: Callable[[], bool], incidents: Incidents | None = None,
                     principal_of: PrincipalOf | None = None, *,
                     metrics_tokens: tuple[str, ...] = ()) -> Starlette:
    """`metrics_tokens`: bearer tokens any of which opens `/metrics`; empty: open."""

    def authorized(request: Request) -> Response | None:
        if admin_token is None:
            return JSONResponse({"detail": "admin API disabled: no admin.token_file"}, 404)
        if not bearer_matches(request.headers.get("authorization", ""), admin_token):
            return JSONResponse({"detail": "admin token required"}, 401, headers=_CHALLENGE)
        return None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if is_ready():
            return PlainTextResponse("ready")
        return PlainTextResponse("not ready", status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        if metrics_tokens and not bearer_matches(request.headers.get("authorization", ""),
                                                 *metrics_tokens):
            return JSONResponse({"detail": "scrape token required"}, 401, headers=_CHALLENGE)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

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
