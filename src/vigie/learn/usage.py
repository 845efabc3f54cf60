"""The usage log: what each client did in report-only mode, as bounded shapes.

The proxy calls `observe` once per answered request (one call in proxy.py);
only report-only requests are looked at, and of each shape only the first 32
bodies of a flush window are read (the requests are all counted). Per client,
requests are aggregated by (method, path shape) with the query parameter
names, page-size maxima, the records location and the field paths returned
(shapes.py: never a value, a NIR or a token). A literal word (path segment,
query name, JSON key) is written only once words.py admits it (vocabulary, or
sent by `min_principals` distinct principals), else as `{}`: a name one person
sends never reaches the file. Memory is capped
(clients, shapes per client, fields per shape, words per path position); what
does not fit is counted in `dropped`. Every `flush_seconds` (and at shutdown)
one JSON line per client is appended to the file and the counters restart:

    {"kind":"vigie-usage/v1","ts":"...","audit_head":"<hash>","client":"C","dropped":0,
     "issuers":["https://idp.example/realms/care"],
     "shapes":[{"method":"GET","path":"/patients/{}","route":"unmatched","requests":12,
                "query":["page_size"],"page_max":{"page_size":50},"records":"$.items[*]",
                "media":"json","fields":["id","last_name"],"scopes":["patient.read"]}]}

`audit_head` is the audit chain's head when the line was written: `vigie policy
suggest` uses it to check that a usage log belongs to the audit it reads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from vigie.context import Decision, Grant, Identity
from vigie.errors import VigieError
from vigie.learn.shapes import (
    PARAM,
    KeyGate,
    field_paths,
    path_shape,
    query_shape,
    records_location,
    scope_names,
)
from vigie.learn.words import DEFAULT_MIN_PRINCIPALS, WordGate
from vigie.messages import OutgoingResponse
from vigie.minimize.decode import Kind, classify, codings, decode_all, parse_content_type
from vigie.policy.model import Mode

log = logging.getLogger("vigie.usage")

KIND = "vigie-usage/v1"
MAX_CLIENTS = 256
MAX_SHAPES = 64
MAX_QUERY_NAMES = 32
MAX_ISSUERS = 8
MAX_WORDS_PER_POSITION = 8
MAX_POSITIONS = 4096
MAX_BODY_BYTES = 4 * 1024 * 1024  # larger bodies: the shape is counted, fields not read
MAX_BODIES_READ = 32  # per shape and flush: every request is counted, 32 bodies are read


class UsageSink(Protocol):
    def observe(self, identity: Identity, grant: Grant, decision: Decision,
                response: OutgoingResponse) -> None: ...

    def close(self) -> None: ...


class NoUsage:
    """The default sink: no usage log configured."""

    def observe(self, identity: Identity, grant: Grant, decision: Decision,
                response: OutgoingResponse) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(slots=True)
class ShapeUse:
    """One (method, path shape): what the recorder aggregates and `suggest` merges back."""

    method: str
    path: str
    route: str
    requests: int = 0
    query: set[str] = field(default_factory=set)
    page_max: dict[str, int] = field(default_factory=dict)
    records: str | None = None
    media: str | None = None
    fields: set[str] = field(default_factory=set)
    scopes: set[str] | None = None  # carried by every token that used it; None: none seen
    bodies_read: int = 0  # this flush window (not written)

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "route": self.route,
                "requests": self.requests, "query": sorted(self.query),
                "page_max": self.page_max, "records": self.records, "media": self.media,
                "fields": sorted(self.fields), "scopes": sorted(self.scopes or ())}


@dataclass(slots=True)
class _Client:
    shapes: dict[tuple[str, str], ShapeUse] = field(default_factory=dict)
    dropped: int = 0
    issuers: set[str] = field(default_factory=set)  # token `iss` values (not personal data)


class UsageRecorder:
    """Aggregates report-only requests per client and appends them to `path` periodically."""

    def __init__(self, path: str, audit_head: Callable[[], str], *,
                 flush_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 min_principals: int = DEFAULT_MIN_PRINCIPALS) -> None:
        self._path = path
        self._gate = WordGate(min_principals)
        self._audit_head = audit_head
        self._flush_seconds = flush_seconds
        self._clock = clock
        self._wall = wall
        self._next_flush = clock() + flush_seconds
        self._clients: dict[str, _Client] = {}
        self._words: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
        self._shapes: dict[tuple[str, str, tuple[str, ...]], str] = {}  # of value-free shapes
        self._lock = threading.Lock()
        self.dropped_clients = 0

    def observe(self, identity: Identity, grant: Grant, decision: Decision,
                response: OutgoingResponse) -> None:
        if grant.mode is not Mode.REPORT_ONLY or decision.client is None:
            return
        with self._lock:
            self._observe(identity, grant, decision, response)
        if self._clock() >= self._next_flush:
            self.flush()

    def _observe(self, identity: Identity, grant: Grant, decision: Decision,
                 response: OutgoingResponse) -> None:
        client = self._clients.get(decision.client or "")
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                self.dropped_clients += 1
                return
            client = self._clients[decision.client or ""] = _Client()
        if len(client.issuers) < MAX_ISSUERS:
            client.issuers.add(identity.issuer)
        principal = (identity.issuer, identity.subject)
        known = self._gate.known(grant.policy)
        path = grant.route.path if grant.route.segments else self._shape(
            decision, grant.path, principal, known)
        key = (decision.method, path)
        shape = client.shapes.get(key)
        if shape is None:
            if len(client.shapes) >= MAX_SHAPES:
                client.dropped += 1
                return
            shape = client.shapes[key] = ShapeUse(decision.method, path, grant.route.name)
        shape.requests += 1
        scopes = scope_names(identity.scopes)
        shape.scopes = scopes if shape.scopes is None else shape.scopes & scopes
        names, sizes = query_shape(grant.query)
        for name in names:
            if len(shape.query) < MAX_QUERY_NAMES:
                shape.query.add(name if self._gate.admit(name, principal, known) else PARAM)
        for name, size in sizes.items():
            if name in shape.query:
                shape.page_max[name] = max(shape.page_max.get(name, 0), size)
        if 200 <= response.status < 300 and shape.bodies_read < MAX_BODIES_READ:
            shape.bodies_read += 1  # the CPU spent on a busy route stays bounded
            self._read_fields(shape, response,
                              lambda key: self._gate.admit(key, principal, known))

    def _shape(self, decision: Decision, path: str, principal: tuple[str, str],
               known: frozenset[str]) -> str:
        """The path shape, with a position collapsed to `{}` once it has shown many words."""
        segments = tuple(s if s == PARAM or self._gate.admit(s, principal, known) else PARAM
                         for s in path_shape(path))
        cache_key = (decision.client or "", decision.method, segments)
        cached = self._shapes.get(cache_key)
        if cached is not None:
            return cached
        out: list[str] = []
        for segment in segments:
            if segment != PARAM:
                key = (decision.client or "", decision.method, tuple(out))
                seen = self._words.get(key)
                if seen is None and len(self._words) >= MAX_POSITIONS:
                    segment = PARAM  # no room to tell words from values: assume a value
                else:
                    seen = self._words.setdefault(key, set())
                    if len(seen) <= MAX_WORDS_PER_POSITION:
                        seen.add(segment)
                        if len(seen) > MAX_WORDS_PER_POSITION:
                            self._shapes.clear()  # shapes cached with a word there are stale
                    if len(seen) > MAX_WORDS_PER_POSITION:
                        segment = PARAM
            out.append(segment)
        shape = "/" + "/".join(out)
        if len(self._shapes) >= MAX_POSITIONS:
            self._shapes.clear()
        self._shapes[cache_key] = shape
        return shape

    def _read_fields(self, shape: ShapeUse, response: OutgoingResponse,
                     admit: KeyGate) -> None:
        body = response.body
        headers = dict(response.headers)
        media, _ = parse_content_type(response.media_type or headers.get("content-type"))
        kind = classify(media)
        shape.media = kind.name.lower()
        if not isinstance(body, bytes | bytearray) or kind not in (Kind.JSON, Kind.NDJSON):
            return
        if len(body) > MAX_BODY_BYTES:
            return
        try:
            data = decode_all(bytes(body), codings(response.headers),
                              MAX_BODY_BYTES)
            if kind is Kind.NDJSON:
                records: list[Any] = [orjson.loads(line) for line in data.splitlines()[:20]
                                      if line.strip()]
                location = "$"
            else:
                location, records = records_location(orjson.loads(data))
        except (ValueError, OSError, VigieError) as exc:  # unreadable here: the shape counts
            log.debug("usage: body not read (%s)", type(exc).__name__)
            return
        shape.records = shape.records or location
        room = max(0, 256 - len(shape.fields))
        if room:
            shape.fields |= field_paths(records, room, admit)

    def flush(self) -> None:
        """Append one line per client seen since the last flush, then start afresh."""
        with self._lock:
            clients, self._clients = self._clients, {}
            self._next_flush = self._clock() + self._flush_seconds
        if not clients:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._wall()))
        head = self._audit_head()
        lines = [orjson.dumps({
            "kind": KIND, "ts": stamp, "audit_head": head, "client": name,
            "dropped": client.dropped, "issuers": sorted(client.issuers),
            "shapes": [shape.as_json() for shape in client.shapes.values()],
        }) + b"\n" for name, client in sorted(clients.items())]
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o640)
            try:
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("usage log %s not written: %s", self._path, exc.strerror)

    def close(self) -> None:
        self.flush()
