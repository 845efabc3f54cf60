"""Differential fuzzing: the native client (and aiohttp) against h11 on hostile responses.

Each example serves one drawn response (tests/upstream_fuzz/wire.py) to a request,
then a clean response for another patient to the next request. Checked:
- where h11 reads a complete response, the client returns exactly its status and
  body, or refuses it (stricter is allowed: a refused connection is never reused);
- where h11 finds no valid response, the client refuses it too;
- the next request gets exactly its own patient (or an error), never a byte of the
  first response, and never rides a connection h11 would not have reused.

Bounded in the normal run; `VIGIE_FUZZ_EXAMPLES=5000` for a long run.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings

from upstream_fuzz.wire import Drawn, Outcome, reference, responses
from upstream_integrity.conftest import client_for
from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.forward import Forwarder

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "60"))
PATIENT_B = b'{"id":"8","name":"Denis"}'
CLEAN_B = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(PATIENT_B), PATIENT_B)


@dataclass
class Upstream:
    drawn: Drawn
    served: int = 0
    per_connection: list[int] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.per_connection)
        self.per_connection.append(0)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.per_connection[index] += 1
                self.served += 1
                if self.served == 1:
                    writer.write(self.drawn.wire)
                    await writer.drain()
                    if self.drawn.closes:
                        break
                else:
                    writer.write(CLEAN_B)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()


async def exchange(client: Forwarder, method: str, path: str) -> Outcome:
    try:
        response = await client.send(method, path, "", [], None)
        try:
            return Outcome("ok", response.status, await response.read(1 << 20))
        finally:
            await response.aclose()
    except (UpstreamError, UpstreamTimeout):
        return Outcome("error")


async def run(kind: str, drawn: Drawn) -> tuple[Outcome, Outcome, Upstream]:
    upstream = Upstream(drawn)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = client_for(kind, url, timeout=2.0)
    try:
        first = await exchange(client, drawn.method, "/patients/1")
        second = await exchange(client, "GET", "/patients/8")
    finally:
        await client.close()
        server.close()
    return first, second, upstream


def check(kind: str, drawn: Drawn) -> None:
    expected = reference(drawn)
    if expected.kind == "error" and not drawn.closes:
        # h11 waits for more: so would the client, until its timeout. Close instead.
        drawn = replace(drawn, closes=True)
        expected = reference(drawn)
    first, second, upstream = asyncio.run(run(kind, drawn))
    if expected.kind == "ok" and first.kind == "ok":
        assert (first.status, first.body) == (expected.status, expected.body), drawn
    elif expected.kind == "error":  # aiohttp too: its parser is made strict (aiohttp_strict)
        assert first.kind == "error", (drawn, first)
    assert second.kind == "error" or (second.status, second.body) == (200, PATIENT_B), (
        drawn, second)
    if not (expected.reusable and first.kind == "ok"):
        assert upstream.per_connection[0] == 1, (drawn, upstream.per_connection)


@pytest.mark.parametrize("kind", ["native", "aiohttp"])
def test_clients_agree_with_h11_or_refuse(kind: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(drawn=responses())
    def one(drawn: Drawn) -> None:
        check(kind, drawn)

    one()
