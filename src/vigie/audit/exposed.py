"""`exposed`: the distinct patient references a client received in a time window.

Built for the breach-notification question over very large logs: lines are
never all parsed. The file is memory-mapped, the client's exact
`"client":"C",` member is searched as raw bytes, and only candidate lines are
looked at: the timestamp (fixed offset; RFC 3339 UTC with a fixed width sorts
as bytes), the status (`"status":2xx`, data disclosed), the principal, and
finally the `patients` array, the only part handed to orjson. Large files are
split by byte ranges over several processes. This relies on the writer's fixed
key order (`vigie.audit.line.LINE_KEYS`): run `verify` first on a log you have
not written yourself.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import orjson

from vigie.audit.line import TS_LENGTH, TS_START

PARALLEL_THRESHOLD_BYTES = 64 * 1024 * 1024
_PATIENTS = b'"patients":'
_AFTER_PATIENTS = b',"fields":'
_STATUS_2XX = b',"status":2'


@dataclass(frozen=True, slots=True)
class _Query:
    client: bytes  # the exact `"client":"C",` member
    principal: bytes | None
    since: bytes | None  # inclusive bounds, in the line's timestamp format
    until: bytes | None


def exposed(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], client: str,
            since: datetime | str | None = None, until: datetime | str | None = None,
            user: str | None = None, *, workers: int | None = None,
            parallel_threshold: int = PARALLEL_THRESHOLD_BYTES) -> Iterator[str]:
    """Distinct patient refs disclosed (status 2xx) to `client` within [since, until], sorted.

    A date without a time means the whole day: `since` from its first millisecond,
    `until` to its last. `user` narrows to one principal (its pseudonym).
    """
    files = [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [
        os.fspath(p) for p in paths]
    query = _Query(
        client=b'"client":' + orjson.dumps(client) + b",",
        principal=None if user is None else b'"principal":' + orjson.dumps(user) + b",",
        since=None if since is None else timestamp_bound(since, end_of_day=False),
        until=None if until is None else timestamp_bound(until, end_of_day=True),
    )
    ranges = [(name, start, end) for name in files
              for start, end in _split(name, workers, parallel_threshold)]
    refs: set[str] = set()
    if len(ranges) <= len(files):
        for name, start, end in ranges:
            refs |= _scan_range(name, start, end, query)
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=_worker_count(workers),
                                 mp_context=context) as pool:
            futures = [pool.submit(_scan_range, name, start, end, query)
                       for name, start, end in ranges]
            for future in futures:
                refs |= future.result()
    return iter(_natural_sort(refs))


def timestamp_bound(value: datetime | str, *, end_of_day: bool) -> bytes:
    """A window bound as the audit timestamp bytes `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).

    Naive times are taken as UTC. Raises ValueError on text that is not ISO 8601.
    """
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end_of_day else time.min, UTC)
        else:
            moment = datetime.fromisoformat(text)
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    millis = moment.microsecond // 1000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z".encode()


def _worker_count(workers: int | None) -> int:
    return max(1, workers if workers is not None else min(os.cpu_count() or 1, 8))


def _split(name: str, workers: int | None, threshold: int) -> list[tuple[int, int]]:
    """Byte ranges of `name` that start at line starts, one per worker for large files."""
    size = os.path.getsize(name)
    count = _worker_count(workers) if size >= threshold else 1
    if count == 1 or size == 0:
        return [(0, size)]
    cuts = [0]
    with open(name, "rb") as handle:
        for index in range(1, count):
            handle.seek(max(cuts[-1], size * index // count))
            handle.readline()  # move to the start of the next line
            cuts.append(min(handle.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _scan_range(name: str, start: int, end: int, query: _Query) -> set[str]:
    with open(name, "rb") as handle:
        if end <= start or os.fstat(handle.fileno()).st_size == 0:
            return set()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            return _scan(buffer, start, min(end, len(buffer)), query)


def _scan(buffer: mmap.mmap, start: int, end: int, query: _Query) -> set[str]:
    refs: set[str] = set()
    add, loads = refs.update, orjson.loads
    find, rfind = buffer.find, buffer.rfind
    needle, principal, since, until = query.client, query.principal, query.since, query.until
    ts_end = TS_START + TS_LENGTH
    position = find(needle, start, end)
    while position != -1:
        line_start = rfind(b"\n", start, position) + 1 or start
        line_end = find(b"\n", position, end)
        if line_end == -1:
            line_end = end
        line = buffer[line_start:line_end]
        position = find(needle, line_end, end)
        stamp = line[TS_START:ts_end]
        if (since is not None and stamp < since) or (until is not None and stamp > until):
            continue
        if _STATUS_2XX not in line or (principal is not None and principal not in line):
            continue
        first = line.find(_PATIENTS) + len(_PATIENTS)
        last = line.find(_AFTER_PATIENTS, first)
        if first < len(_PATIENTS) or last == -1:
            continue
        add(loads(line[first:last]))
    return refs


def _natural_sort(refs: set[str]) -> list[str]:
    """Numeric references in numeric order first, then the others; C-level sorts only."""
    numbers = [ref for ref in refs if ref.isdigit()]
    others = sorted(ref for ref in refs if not ref.isdigit())
    numbers.sort()
    numbers.sort(key=len)  # stable: by length, then by digits, i.e. numeric order
    return numbers + others
