"""The cost of `upstream_keepalive: false`: sequential exchanges of the native client alone.

A micro-measurement (seconds, one process, no wrk): N GETs of a 1 KB body against a
loopback asyncio server, with and without keep-alive, over http and https. It shows
what a fresh connection (and TLS handshake) per request costs the forwarder; the
whole-proxy figure is `make bench`.

    .venv/bin/python bench/keepalive_cost.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.upstream_pki import make_pki  # noqa: E402
from vigie.config import Settings  # noqa: E402
from vigie.upstream.client import NativeForwarder  # noqa: E402
from vigie.upstream.options import UpstreamOptions, tls_context  # noqa: E402

BODY = b"x" * 1024
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(BODY), BODY)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(ANSWER)
            await writer.drain()
            if b"connection: close" in head:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def measure(url: str, options: UpstreamOptions, count: int) -> float:
    fwd = NativeForwarder(url, options)
    started = time.perf_counter()
    for _ in range(count):
        response = await fwd.send("GET", "/patients/42", "", [], None)
        await response.read(1 << 20)
        await response.aclose()
    elapsed = time.perf_counter() - started
    await fwd.close()
    return count / elapsed


async def main(count: int) -> None:
    pki = make_pki(Path(tempfile.mkdtemp()) / "pki")
    plain = await asyncio.start_server(serve, "127.0.0.1", 0)
    secure = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=pki.server_context())
    urls = {"http": f"http://127.0.0.1:{plain.sockets[0].getsockname()[1]}",
            "https": f"https://127.0.0.1:{secure.sockets[0].getsockname()[1]}"}
    print("| scheme | keep-alive | exchanges/s |\n|---|---|---:|")
    for scheme, url in urls.items():
        context = tls_context(Settings(upstream=url, upstream_ca_file=pki.ca)) \
            if scheme == "https" else None
        for keepalive in (True, False):
            rate = await measure(url, UpstreamOptions(ssl_context=context,
                                                      keepalive=keepalive), count)
            print(f"| {scheme} | {'on' if keepalive else 'off'} | {rate:,.0f} |")
    plain.close()
    secure.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
