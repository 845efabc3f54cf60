"""The soak's side processes: `python -m soak.servers upstream|issuer ...`.

The upstream is the demo legacy API behind a middleware that appends the
X-Request-ID of every request it receives to a log file *before* answering, so the
soak can compare what reached the upstream with what Vigie audited. The issuer
serves a JWKS for a key the soak driver holds, so tokens stay valid across its
restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vigie.demo.issuer import DemoIssuer
from vigie.demo.legacy_api import create_legacy_app
from vigie.server import bind, make_server
from vigie.types import ASGIApp, Receive, Scope, Send


class RequestLog:
    """ASGI middleware: one line per received request (its X-Request-ID), flushed."""

    def __init__(self, app: ASGIApp, path: Path) -> None:
        self.app = app
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request_id = dict(scope["headers"]).get(b"x-request-id")
            if request_id:
                os.write(self.fd, request_id + b"\n")
        await self.app(scope, receive, send)


def load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit(f"{path}: not an RSA key")
    return key


async def _serve(app: ASGIApp, port: int) -> None:
    server = make_server(app, 1)
    await server.serve(sockets=[bind("127.0.0.1", port)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="soak.servers")
    parser.add_argument("kind", choices=["upstream", "issuer"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--issuer-url")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    if args.kind == "upstream":
        app: ASGIApp = RequestLog(create_legacy_app(count=args.count), args.log)
    else:
        app = DemoIssuer(args.issuer_url, key=load_key(args.key)).app()
    asyncio.run(_serve(app, args.port))


if __name__ == "__main__":
    main()
