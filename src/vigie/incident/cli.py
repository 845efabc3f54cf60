"""`vigie revoke ...` and `vigie contain ...`: the incident API of a running Vigie, from a shell.

    vigie revoke client CLIENT --reason R [--issued-before T]
    vigie revoke user CLIENT (PRINCIPAL | --sub SUB) --reason R [--issued-before T]
    vigie revoke jti JTI [--client CLIENT] --reason R
    vigie revoke list | vigie revoke lift ID
    vigie contain [set] CLIENT|'*' deny|read-only|minimal --reason R (--for 2h | --until T)
    vigie contain list | vigie contain lift CLIENT|'*'

Where: `--admin URL` (or VIGIE_ADMIN_URL; default http://127.0.0.1:9090), the token in
`--token-file` (or VIGIE_ADMIN_TOKEN_FILE). Exit 0 when done and confirmed; 1 when NOT
confirmed (enforced by the replica that answered only) or refused by the store; 2 on
bad input, an unknown client or id, or an unreachable admin listener.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from vigie.argparsing import Parser, UsageError

DEFAULT_ADMIN = "http://127.0.0.1:9090"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin", default=os.environ.get("VIGIE_ADMIN_URL", DEFAULT_ADMIN),
                        help="admin listener URL (VIGIE_ADMIN_URL)")
    parser.add_argument("--token-file", default=os.environ.get("VIGIE_ADMIN_TOKEN_FILE"),
                        help="file holding the admin token (VIGIE_ADMIN_TOKEN_FILE)")
    parser.add_argument("--operator", default=_login(),
                        help="who acts, recorded with the change (default: your login)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unnamed"


def main_revoke(argv: list[str]) -> int:
    parser = Parser(prog="vigie revoke", description="Revoke tokens at the proxy.")
    sub = parser.add_subparsers(dest="what", required=True, parser_class=Parser)
    client = sub.add_parser("client", help="every token of a client issued before a time")
    client.add_argument("client")
    user = sub.add_parser("user", help="every token of one user issued before a time")
    user.add_argument("client")
    user.add_argument("principal", nargs="?", help="the user's pseudonym in the audit log")
    user.add_argument("--sub", help="the raw token `sub` instead (needs pseudonym_key_file)")
    jti = sub.add_parser("jti", help="one token, by its `jti`")
    jti.add_argument("jti")
    jti.add_argument("--client", help="only for this client")
    for p in (client, user, jti):
        p.add_argument("--reason", required=True, help="ticket or short why (recorded)")
        _common(p)
    for p in (client, user):
        p.add_argument("--issued-before", help="ISO 8601 cut-off (default: now): the "
                                               "credential reset; later tokens pass")
    _common(sub.add_parser("list", help="revocations in force"))
    lift = sub.add_parser("lift", help="lift a revocation (its id, from `list`)")
    lift.add_argument("id")
    _common(lift)
    try:
        args = parser.parse_args(argv)
        if args.what in ("list", "lift"):
            return _list_or_lift(args, "revocations", args.what == "lift" and args.id,
                                 "revocation")
        body: dict[str, Any] = {"kind": args.what, "reason": args.reason}
        if args.what == "jti":
            body["jti"] = args.jti
            if args.client:
                body["client"] = args.client
        else:
            body["client"] = args.client
            if args.issued_before:
                body["issued_before"] = args.issued_before
        if args.what == "user":
            if (args.principal is None) == (args.sub is None):
                raise UsageError("vigie revoke user: give the PRINCIPAL (psn-...) or --sub")
            body["principal" if args.principal else "sub"] = args.principal or args.sub
        return _change(args, "POST", "/incident/revocations", body, "revocation")
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2


def main_contain(argv: list[str]) -> int:
    if argv and argv[0] not in ("list", "lift", "set", "-h", "--help"):
        argv = ["set", *argv]
    parser = Parser(prog="vigie contain", description=(
        "Containment switches: vigie contain CLIENT|'*' deny|read-only|minimal --reason R "
        "(--for 2h | --until T) ('set' is implied); vigie contain list; "
        "vigie contain lift CLIENT."))
    sub = parser.add_subparsers(dest="what", required=True, parser_class=Parser)
    switch = sub.add_parser("set", help="set a switch (the default sub-command)")
    switch.add_argument("scope", metavar="CLIENT", help="a client, or '*' for every client")
    switch.add_argument("mode", choices=["deny", "read-only", "minimal"])
    switch.add_argument("--reason", required=True, help="ticket or short why (recorded)")
    ends = switch.add_mutually_exclusive_group(required=True)
    ends.add_argument("--for", dest="duration", help="how long: 30m, 2h, 1d")
    ends.add_argument("--until", help="ISO 8601 end")
    _common(switch)
    _common(sub.add_parser("list", help="switches in force"))
    lift = sub.add_parser("lift", help="end a switch")
    lift.add_argument("scope", metavar="CLIENT")
    _common(lift)
    try:
        args = parser.parse_args(argv)
        if args.what in ("list", "lift"):
            return _list_or_lift(args, "containments", args.what == "lift" and args.scope,
                                 "the switch of")
        body: dict[str, Any] = {"mode": args.mode, "reason": args.reason}
        if args.duration:
            body["for"] = args.duration
        else:
            body["expires"] = args.until
        return _change(args, "PUT", f"/incident/containments/{args.scope}", body,
                       "containment")
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2


def _request(args: argparse.Namespace, method: str, path: str,
             body: dict[str, Any] | None = None) -> httpx.Response:
    if not args.token_file:
        raise UsageError("the admin token is needed: --token-file FILE or "
                          "VIGIE_ADMIN_TOKEN_FILE (the file of admin.token_file)")
    try:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"{args.token_file}: cannot read the admin token: "
                          f"{exc.strerror}") from None
    headers = {"Authorization": f"Bearer {token}", "X-Vigie-Operator": args.operator}
    try:
        return httpx.request(method, args.admin.rstrip("/") + path, json=body,
                             headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise UsageError(f"{args.admin}: admin listener unreachable ({type(exc).__name__}); "
                          "NOTHING was changed") from None


def _refused(response: httpx.Response) -> int:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    print(f"vigie: refused ({response.status_code}): {detail}", file=sys.stderr)
    return 1 if response.status_code == 503 else 2


def _change(args: argparse.Namespace, method: str, path: str, body: dict[str, Any],
            what: str) -> int:
    response = _request(args, method, path, body)
    if response.status_code not in (201, 202):
        return _refused(response)
    answer = response.json()
    if args.json:
        print(response.text)
    entry = answer[what]
    print(_describe(what, entry))
    if not answer.get("confirmed"):
        print(f"NOT CONFIRMED: {answer.get('detail', '')}. Check the store (Redis) and run "
              "the same command again; until then treat the incident as NOT contained.",
              file=sys.stderr)
        return 1
    if not answer.get("persistent"):
        print("warning: this Vigie keeps no incident state (no redis, no incident.state_file):"
              " lost when it restarts", file=sys.stderr)
    return 0


def _describe(what: str, e: dict[str, Any]) -> str:
    if what == "revocation":
        target = {"client": f"client {e['client']}",
                  "user": f"user {e['principal']} of {e['client']}",
                  "jti": f"token jti {e['jti']}"}[e["kind"]]
        cut = "" if e["kind"] == "jti" else f" issued before {e['issued_before']}"
        return (f"revoked {target}{cut}: id {e['id']}, in force until {e['expires']} "
                f"(by {e['by']}, reason: {e['reason']})")
    scope = "every client" if e["scope"] == "*" else f"client {e['scope']}"
    return (f"contained {scope}: {e['mode']} until {e['expires']} "
            f"(by {e['by']}, reason: {e['reason']})")


def _list_or_lift(args: argparse.Namespace, key: str, target: str | bool,
                  noun: str) -> int:
    """`list` (target False) or `lift TARGET` of the revocations or the containments."""
    if target:
        response = _request(args, "DELETE", f"/incident/{key}/{target}")
        if response.status_code != 204:
            return _refused(response)
        print(f"lifted {noun} {target}")
        return 0
    response = _request(args, "GET", f"/incident/{key}")
    if response.status_code != 200:
        return _refused(response)
    answer = response.json()
    if args.json:
        print(response.text)
        return 0
    what = "revocation" if key == "revocations" else "containment"
    for entry in answer[key]:
        print(_describe(what, entry))
    print(f"{len(answer[key])} {key} in force ({answer['store']} store"
          + (f", {answer['unconfirmed']} NOT confirmed" if answer["unconfirmed"] else "")
          + ")", file=sys.stderr)
    return 0
