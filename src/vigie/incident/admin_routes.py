"""The incident API of the admin listener, behind the admin token.

    GET    /incident/revocations            in force (and how many are unconfirmed)
    POST   /incident/revocations            {kind: client|user|jti, client, principal|sub,
                                             jti, issued_before, reason} -> 201, or 202
                                             when enforced here but NOT confirmed by the store
    DELETE /incident/revocations/{id}       204; 404 unknown or expired; 503 not lifted
    GET    /incident/containments
    PUT    /incident/containments/{scope}   {mode, reason, expires | for} -> 201 or 202
    DELETE /incident/containments/{scope}   204; 404; 503

`{scope}` is a client or `*` (every client). Who acted is the operator named in
`X-Vigie-Operator` (the CLI sends the login) and the admin token's fingerprint.
A raw `sub` given to revoke a user is turned into its audit pseudonym here and never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vigie.incident.model import (
    ContainMode,
    IncidentInputError,
    RevocationKind,
    check_name,
    iso,
    parse_duration,
    parse_time,
)
from vigie.incident.registry import Change, Incidents, UnknownClient
from vigie.incident.stores import StoreUnavailable

Authorize = Callable[[Request], Response | None]
PrincipalOf = Callable[[str, str], str]
Handler = Callable[[Request], Awaitable[Response]]

NOT_CONFIRMED = ("NOT confirmed by the {backend} store: enforced on this replica only, "
                 "retried every 200 ms; other replicas may still accept it")


def incident_routes(incidents: Incidents, authorized: Authorize, admin_token: str | None,
                    principal_of: PrincipalOf | None) -> list[Route]:
    fingerprint = (hashlib.sha256(admin_token.encode()).hexdigest()[:8]
                   if admin_token else "none")

    def operator(request: Request) -> str:
        name = request.headers.get("x-vigie-operator") or "unnamed"
        return f"{check_name(name, 'operator')} (admin token {fingerprint})"

    def endpoint(handler: Handler) -> Handler:
        """Behind the admin token; bad input 400, an unknown client 404."""
        async def guarded(request: Request) -> Response:
            refused = authorized(request)
            if refused is not None:
                return refused
            try:
                return await handler(request)
            except UnknownClient as exc:
                return _problem(404, str(exc))
            except IncidentInputError as exc:
                return _problem(400, str(exc))
        return guarded

    def removal(param: str, remove: Callable[[str, str], Awaitable[object | None]],
                noun: str, listing: str) -> Handler:
        """DELETE: 204; 404 when nothing of that name is in force; 503 when the store
        cannot confirm (nothing is lifted halfway)."""
        async def handler(request: Request) -> Response:
            target = request.path_params[param]
            try:
                found = await remove(target, operator(request))
            except StoreUnavailable:
                return _problem(503, f"NOT lifted: the {incidents.store.backend} store is "
                                     f"unavailable; the {noun} stays in force; retry")
            if found is None:
                return _problem(404, f"no {noun} in force for {target!r} "
                                     f"(`{listing}`; an expired one ended by itself)")
            return Response(status_code=204)
        return endpoint(handler)

    async def list_revocations(request: Request) -> Response:
        active, _ = incidents.state.active(incidents.now())
        return JSONResponse(_listing(incidents, "revocations",
                                     [_shown(r.as_json()) for r in active]))

    async def revoke(request: Request) -> Response:
        body = await _body(request)
        kind = _choice(RevocationKind, body.get("kind"), "kind")
        client = body.get("client")
        principal = body.get("principal")
        if kind is RevocationKind.USER and principal is None and "sub" in body:
            if principal_of is None:
                raise IncidentInputError("sub: revoking by raw sub needs pseudonym_key_file "
                                         "(give the principal from the audit log instead)")
            principal = principal_of(check_name(client, "client"),
                                     check_name(body["sub"], "sub"))
        before = body.get("issued_before")
        change = await incidents.revoke(
            kind, client=client, principal=principal, jti=body.get("jti"),
            issued_before=None if before is None else parse_time(before, "issued_before"),
            reason=body.get("reason"), by=operator(request))
        return _changed(incidents, "revocation", change)

    async def list_containments(request: Request) -> Response:
        _, active = incidents.state.active(incidents.now())
        return JSONResponse(_listing(incidents, "containments",
                                     [_shown(c.as_json()) for c in active]))

    async def contain(request: Request) -> Response:
        body = await _body(request)
        mode = _choice(ContainMode, body.get("mode"), "mode")
        change = await incidents.set_switch(request.path_params["scope"], mode,
                                            reason=body.get("reason"), by=operator(request),
                                            expires=_expiry(body, incidents.now()))
        return _changed(incidents, "containment", change)

    lift = removal("id", incidents.lift, "revocation", "vigie revoke list")
    release = removal("scope", incidents.release, "switch", "vigie contain list")
    return [
        Route("/incident/revocations", endpoint(list_revocations), methods=["GET"]),
        Route("/incident/revocations", endpoint(revoke), methods=["POST"]),
        Route("/incident/revocations/{id}", lift, methods=["DELETE"]),
        Route("/incident/containments", endpoint(list_containments), methods=["GET"]),
        Route("/incident/containments/{scope}", endpoint(contain), methods=["PUT"]),
        Route("/incident/containments/{scope}", release, methods=["DELETE"]),
    ]


def _listing(incidents: Incidents, key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: entries, "store": incidents.store.backend,
            "persistent": incidents.store.persistent, "unconfirmed": incidents.unconfirmed}


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """Times as ISO 8601 UTC, for people."""
    return {k: iso(v) if k in ("issued_before", "expires", "created") else v
            for k, v in entry.items()}


def _changed(incidents: Incidents, what: str, change: Change) -> Response:
    body: dict[str, Any] = {what: _shown(change.entry.as_json()), "confirmed": change.confirmed,
                            "store": incidents.store.backend,
                            "persistent": incidents.store.persistent}
    if not change.confirmed:
        body["detail"] = NOT_CONFIRMED.format(backend=incidents.store.backend)
    return JSONResponse(body, 201 if change.confirmed else 202)


def _expiry(body: dict[str, Any], now: float) -> float:
    if ("expires" in body) == ("for" in body):
        raise IncidentInputError("give exactly one of expires (ISO 8601) or for (30m, 2h, 1d)")
    if "for" in body:
        value = body["for"]
        if not isinstance(value, str):
            raise IncidentInputError("for: a duration such as 30m, 2h or 1d")
        return now + parse_duration(value, "for")
    return parse_time(body["expires"], "expires")


def _choice(kind: Any, value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(member) for member in kind)
        raise IncidentInputError(f"{what}: one of {choices}") from None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise IncidentInputError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise IncidentInputError("the body must be a JSON object")
    return body


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status)
