"""`exposed`: the distinct patient references a client (or a principal) received in a window.

Built for the breach-notification question over very large logs: lines are
never all parsed. The file is memory-mapped, the client's exact
`"client":"C",` member is searched as raw bytes, and only candidate lines are
looked at: the timestamp (fixed offset; RFC 3339 UTC with a fixed width sorts
as bytes), the status (`"status":2xx`, data disclosed), the principal, and
finally the `patients` array, the only part handed to orjson. Large files are
split by byte ranges over several processes. This relies on the writer's fixed
key order (`vigie.audit.line.LINE_KEYS`): run `verify` first on a log you have
not written yourself.

`exposed_fields` answers the notification's second question, in which form each patient's
fields were disclosed: it parses the candidate lines whole to read their `forms` member
(lines written before it existed count their `fields` as disclosed in clear).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import orjson

from vigie.audit.line import TS_LENGTH, TS_START

PARALLEL_THRESHOLD_BYTES = 64 * 1024 * 1024
_PATIENTS = b'"patients":'
_AFTER_PATIENTS = b',"fields":'
_STATUS_2XX = b',"status":2'


Progress = Callable[[int, int], None]  # (bytes scanned, bytes in all)
Forms = dict[str, dict[str, set[str]]]  # patient -> field -> forms
PROGRESS_PIECE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Query:
    client: bytes | None  # the exact `"client":"C",` member
    principal: bytes | None
    since: bytes | None  # inclusive bounds, in the line's timestamp format
    until: bytes | None


def exposed(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
            client: str | None, since: datetime | str | None = None,
            until: datetime | str | None = None, user: str | None = None, *,
            workers: int | None = None, parallel_threshold: int = PARALLEL_THRESHOLD_BYTES,
            progress: Progress | None = None) -> Iterator[str]:
    """Distinct patient refs disclosed (status 2xx) to `client` within [since, until], sorted.

    A date without a time means the whole day: `since` from its first millisecond,
    `until` to its last. `user` narrows to one principal (its pseudonym); with `user`,
    `client` may be None: every client's lines of that principal, deduplicated.
    `progress(done, total)` is called as byte ranges are scanned.
    """
    found = _run(_files(paths), _query(client, since, until, user), _scan_range, workers,
                 parallel_threshold, progress, set())
    return iter(_natural_sort(found))


def exposed_fields(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                   client: str | None, since: datetime | str | None = None,
                   until: datetime | str | None = None, user: str | None = None, *,
                   workers: int | None = None,
                   parallel_threshold: int = PARALLEL_THRESHOLD_BYTES,
                   progress: Progress | None = None) -> list[tuple[str, dict[str, set[str]]]]:
    """Like `exposed`, with, per patient, each field disclosed and its forms (clear, masked,
    pseudonym, generalized), sorted by patient."""
    found: Forms = _run(_files(paths), _query(client, since, until, user), _scan_forms_range,
                        workers, parallel_threshold, progress, {})
    return [(ref, found[ref]) for ref in _natural_sort(set(found))]


def _files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    return [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [
        os.fspath(p) for p in paths]


def _query(client: str | None, since: datetime | str | None, until: datetime | str | None,
           user: str | None) -> _Query:
    if client is None and user is None:
        raise ValueError("a client or a principal is required")
    return _Query(
        client=None if client is None else b'"client":' + orjson.dumps(client) + b",",
        principal=None if user is None else b'"principal":' + orjson.dumps(user) + b",",
        since=None if since is None else timestamp_bound(since, end_of_day=False),
        until=None if until is None else timestamp_bound(until, end_of_day=True),
    )


def _run(files: list[str], query: _Query, scan: Callable[[str, int, int, _Query], Any],
         workers: int | None, threshold: int, progress: Progress | None, found: Any) -> Any:
    piece = PROGRESS_PIECE_BYTES if progress is not None else None
    ranges = [(name, start, end) for name in files
              for start, end in _split(name, workers, threshold, piece)]
    total, done = sum(end - start for _, start, end in ranges), 0
    if len(ranges) <= len(files):
        results: Iterable[Any] = (scan(name, start, end, query) for name, start, end in ranges)
        for (_, start, end), result in zip(ranges, results, strict=True):
            _merge(found, result)
            done += end - start
            if progress is not None:
                progress(done, total)
        return found
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=_worker_count(workers), mp_context=context) as pool:
        futures = {pool.submit(scan, name, start, end, query): end - start
                   for name, start, end in ranges}
        for future in as_completed(futures):
            _merge(found, future.result())
            done += futures[future]
            if progress is not None:
                progress(done, total)
    return found


def _merge(found: Any, result: Any) -> None:
    if isinstance(found, set):
        found |= result
        return
    for ref, fields in result.items():
        into = found.setdefault(ref, {})
        for name, forms in fields.items():
            into.setdefault(name, set()).update(forms)


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


def _split(name: str, workers: int | None, threshold: int,
           piece: int | None = None) -> list[tuple[int, int]]:
    """Byte ranges of `name` that start at line starts, one per worker for large files
    (or one per `piece` bytes, so that progress can be shown)."""
    size = os.path.getsize(name)
    count = _worker_count(workers) if size >= threshold else 1
    if piece is not None and size >= threshold:
        count = max(count, size // piece)
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
    refs: set[str] = _mapped(name, start, end, query, _scan, set())
    return refs


def _scan_forms_range(name: str, start: int, end: int, query: _Query) -> Forms:
    found: Forms = _mapped(name, start, end, query, _scan_forms, {})
    return found


def _mapped(name: str, start: int, end: int, query: _Query,
            scan: Callable[[mmap.mmap, int, int, _Query], Any], empty: Any) -> Any:
    with open(name, "rb") as handle:
        if end <= start or os.fstat(handle.fileno()).st_size == 0:
            return empty
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            return scan(buffer, start, min(end, len(buffer)), query)


def _scan(buffer: mmap.mmap, start: int, end: int, query: _Query) -> set[str]:
    refs: set[str] = set()
    add, loads = refs.update, orjson.loads
    for line in _candidates(buffer, start, end, query):
        first = line.find(_PATIENTS) + len(_PATIENTS)
        last = line.find(_AFTER_PATIENTS, first)
        if first < len(_PATIENTS) or last == -1:
            continue
        add(loads(line[first:last]))
    return refs


def _scan_forms(buffer: mmap.mmap, start: int, end: int, query: _Query) -> Forms:
    found: Forms = {}
    for line in _candidates(buffer, start, end, query):
        record = orjson.loads(line)
        forms = record.get("forms")
        if not isinstance(forms, dict):  # written before `forms` existed
            forms = {name: "clear" for name in record.get("fields") or ()}
        for ref in record.get("patients") or ():
            into = found.setdefault(str(ref), {})
            for field, form in forms.items():
                into.setdefault(str(field), set()).add(str(form))
    return found


def _needle(query: _Query) -> bytes:
    found = query.client or query.principal
    if found is None:
        raise ValueError("a client or a principal is required")
    return found


def _candidates(buffer: mmap.mmap, start: int, end: int, query: _Query) -> Iterator[bytes]:
    """Lines of the query's client or principal, in its window, with a 2xx status."""
    find, rfind = buffer.find, buffer.rfind
    needle, principal = _needle(query), query.principal
    if needle is principal:
        principal = None
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
        if (query.since is not None and stamp < query.since) or (
                query.until is not None and stamp > query.until):
            continue
        if _STATUS_2XX in line and (principal is None or principal in line):
            yield line


def _natural_sort(refs: set[str]) -> list[str]:
    """Numeric references in numeric order first, then the others; C-level sorts only."""
    numbers = [ref for ref in refs if ref.isdigit()]
    others = sorted(ref for ref in refs if not ref.isdigit())
    numbers.sort()
    numbers.sort(key=len)  # stable: by length, then by digits, i.e. numeric order
    return numbers + others
