"""A legacy patient API that misbehaves on purpose, served raw from its own thread.

`GET /patients/N` answers `{"id": "N", "name": ...}` with the request's X-Request-ID
echoed. It reads a request head and, like many legacy servers, ignores the body of
a GET (CL.0): body bytes are read as the next request. `misbehave` picks what it
does wrong on the first request it serves (once per server):

- second_immediate: a second, unrequested response (patient 2) in the same write
- second_late: the stray response is written only after the next request arrived
  on that connection (ordered by reading that request, never by a sleep), as if it
  were that request's answer
- second_idle: the stray response is written once `idle.set()` is called
- head_body: a HEAD answered with headers and then a whole response (patient 2)
- body_204 / body_304: a 204 / 304 followed by a whole response (patient 2)
- cl_shorter: Content-Length covers half the body; the rest is a response (patient 2)
- cl_longer: Content-Length larger than the body, then silence
- interim: 100 Continue and 103 Early Hints before the final response
- upgrade: an unsolicited 101 Switching Protocols, then bytes
- close_mid_body: half the body, then the connection is closed
- cl_chars: a Content-Length that counts characters, not bytes, of a body with accents

Every patient carries a synthetic NIR (`NIRS`): a test can check none reaches a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

NAMES = {"1": "Alice Synthétique", "2": "Bruno Fictif", "7": "Chloé Exemple",
         "8": "Denis Modèle", "9": "Emma Essai", "42": "Fanny Secrète"}
_PATIENT = re.compile(rb"^[A-Z]+ /(?:admin/)?patients/(\w+)")


NIRS = {pid: f"28507{int(pid) % 10}7512345{int(pid) % 100:02d}" for pid in NAMES}


def patient_json(pid: str) -> bytes:
    return orjson.dumps({"id": pid, "name": NAMES.get(pid, "Inconnu Test"),
                         "nir": NIRS.get(pid, "185057800608491")})


def response(pid: str, request_id: str | None, *, status: bytes = b"200 OK",
             length: int | None = None, body: bytes | None = None) -> bytes:
    payload = patient_json(pid) if body is None else body
    echo = b"x-request-id: %b\r\n" % request_id.encode() if request_id else b""
    size = len(payload) if length is None else length
    return (b"HTTP/1.1 %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b"
            % (status, size, echo, payload))


@dataclass
class LegacyServer:
    misbehave: str = ""
    tls: ssl.SSLContext | None = None
    seen: list[bytes] = field(default_factory=list)  # request lines, in order
    heads: list[bytes] = field(default_factory=list)  # whole request heads, in order
    connections: int = 0
    port: int = 0
    idle: threading.Event = field(default_factory=threading.Event)
    stray_sent: threading.Event = field(default_factory=threading.Event)
    _done_once: bool = False

    def arm(self, misbehave: str) -> None:
        """Misbehave this way on the next request served."""
        self.misbehave = misbehave
        self._done_once = False

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _read(self, reader: asyncio.StreamReader) -> tuple[bytes, str | None] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        line = head.split(b"\r\n", 1)[0]
        self.seen.append(line)
        self.heads.append(head)
        request_id = None
        length = 0
        for raw in head.split(b"\r\n")[1:]:
            name, _, value = raw.partition(b":")
            if name.strip().lower() == b"x-request-id":
                request_id = value.strip().decode()
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length and not line.startswith((b"GET ", b"HEAD ")):  # a GET body is ignored
            await reader.readexactly(length)
        return line, request_id

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (got := await self._read(reader)) is not None:
                line, request_id = got
                match = _PATIENT.match(line)
                pid = match.group(1).decode() if match else "0"
                if self._done_once or not self.misbehave:
                    writer.write(response(pid, request_id))
                    await writer.drain()
                    continue
                self._done_once = True
                if not await self._misbehave(reader, writer, pid, request_id):
                    return
        except (ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the test is over: asyncio would log a cancelled handler
            pass
        finally:
            self.stray_sent.set()
            # everything written was drained: abort, so that a TLS close never waits for a
            # close_notify from a client that already went away
            writer.transport.abort()

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         pid: str, request_id: str | None) -> bool:
        """The first exchange done wrong; False when the connection is to be dropped."""
        stray = response("2", request_id)  # a buggy server repeats the id it last saw
        kind = self.misbehave
        if kind == "second_immediate":
            writer.write(response(pid, request_id) + stray)
        elif kind == "second_late":
            writer.write(response(pid, request_id))
            await writer.drain()
            if await self._read(reader) is None:  # the next request is on the wire: now
                return False
            writer.write(stray)  # ...the stray answer, as if it were that request's
            await writer.drain()
            self.stray_sent.set()
            await reader.read()  # and nothing else, until the client gives up the connection
            return False
        elif kind == "second_idle":
            writer.write(response(pid, request_id))
            await writer.drain()
            await asyncio.to_thread(self.idle.wait, 10)
            writer.write(stray)
            self.stray_sent.set()
        elif kind == "head_body":
            writer.write(response(pid, request_id, length=len(patient_json(pid)), body=b"")
                         + stray)
        elif kind in ("body_204", "body_304"):
            status = b"204 No Content" if kind == "body_204" else b"304 Not Modified"
            echo = b"x-request-id: %b\r\n" % request_id.encode() if request_id else b""
            writer.write(b"HTTP/1.1 %b\r\n%b\r\n" % (status, echo) + stray)
        elif kind == "cl_shorter":
            body = patient_json(pid)
            writer.write(response(pid, request_id, length=len(body) // 2) + body[len(body) // 2:]
                         + b"\r\n\r\n" + stray)
        elif kind == "cl_longer":
            writer.write(response(pid, request_id, length=len(patient_json(pid)) + 500))
            await writer.drain()
            await reader.read()  # silence until the client gives up
            return False
        elif kind == "interim":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                         b"link: </a>\r\n\r\n" + response(pid, request_id))
        elif kind == "upgrade":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n"
                         b"connection: upgrade\r\n\r\n" + stray)
            await writer.drain()
            await reader.read()
            return False
        elif kind == "cl_chars":
            body = patient_json(pid)
            writer.write(response(pid, request_id, length=len(body.decode()), body=body))
        elif kind == "close_mid_body":
            body = patient_json(pid)
            writer.write(response(pid, request_id)[:-len(body) // 2])
            await writer.drain()
            return False
        else:
            raise ValueError(kind)
        await writer.drain()
        return True


@contextlib.contextmanager
def legacy_server(misbehave: str = "", tls: ssl.SSLContext | None = None
                  ) -> Iterator[LegacyServer]:
    """The server, listening on 127.0.0.1 from its own thread and loop, until the block ends."""
    server = LegacyServer(misbehave, tls)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        tcp = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
        server.port = tcp.sockets[0].getsockname()[1]
        ready.set()
        await stop.wait()
        tcp.close()
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        for task in handlers:
            task.cancel()
        if handlers:  # let them finish their cleanup (bounded: a stuck TLS close is dropped)
            await asyncio.wait(handlers, timeout=2)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the legacy server did not start")
    try:
        yield server
    finally:
        server.idle.set()
        loop.call_soon_threadsafe(lambda: stop.set() if stop else None)
        thread.join(10)
        loop.close()
