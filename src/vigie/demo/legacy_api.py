"""The synthetic legacy patient API that Vigie protects in the demo and the tests.

It behaves like the legacy systems Vigie sits in front of: it returns everything,
NIR included, to anyone who asks, in bulk if asked (page_size up to 1000, a full
NDJSON export). Records are serialized once with orjson and served from memory.
Like real servers (HAPI FHIR, most legacy APIs) it writes absolute links built from
the Host it was reached at: `links.next` and a `Link` header on searches, FHIR
`Bundle.link[].url` and `entry[].fullUrl`; Vigie rewrites them to its own address.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Iterable
from functools import lru_cache

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vigie.demo.patients import DECOY_IDS, DEFAULT_COUNT, DEFAULT_SEED, patient, to_fhir

JSON = "application/json"
FHIR_JSON = "application/fhir+json"
NDJSON = "application/x-ndjson"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
_EXPORT_CHUNK = 250


def _fold(text: str) -> str:
    """Case- and accent-insensitive form used for prefix search ("lefèvre" ~ "LEFEVRE")."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()


class PatientStore:
    """Every synthetic patient of one (count, seed), pre-serialized as legacy JSON and FHIR."""

    def __init__(self, count: int, seed: int) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self.count = count
        self.ids: tuple[int, ...] = (*range(1, count + 1), *DECOY_IDS)
        records = {pid: patient(pid, seed) for pid in self.ids}
        self._json = {pid: orjson.dumps(record) for pid, record in records.items()}
        self._fhir = {pid: orjson.dumps(to_fhir(record)) for pid, record in records.items()}
        self._index = tuple(
            (pid, _fold(record["last_name"]), record["birth_date"])
            for pid, record in records.items()
        )

    def json(self, patient_id: str) -> bytes | None:
        return self._json.get(_parse_id(patient_id))

    def fhir(self, patient_id: str) -> bytes | None:
        return self._fhir.get(_parse_id(patient_id))

    def search(self, last_name: str = "", birth_date: str = "") -> list[int]:
        """Ids whose last name starts with `last_name` and birth date with `birth_date`."""
        prefix = _fold(last_name)
        return [
            pid
            for pid, folded, born in self._index
            if folded.startswith(prefix) and born.startswith(birth_date)
        ]

    def export_lines(self) -> Iterable[bytes]:
        """One JSON line per regular patient (decoys are not part of the bulk export)."""
        return (self._json[pid] + b"\n" for pid in range(1, self.count + 1))

    def json_many(self, ids: Iterable[int]) -> list[bytes]:
        return [self._json[pid] for pid in ids]

    def fhir_many(self, ids: Iterable[int]) -> list[tuple[int, bytes]]:
        return [(pid, self._fhir[pid]) for pid in ids]


def _parse_id(text: str) -> int:
    """Canonical decimal ids only: "42" yes; "042", "+42", " 42" are unknown patients."""
    if not text.isascii() or not text.isdigit() or text != str(int(text)):
        return -1
    return int(text)


@lru_cache(maxsize=4)
def patient_store(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> PatientStore:
    """Shared, built once per (count, seed): several apps in one process reuse it."""
    return PatientStore(count, seed)


class _BadRequest(Exception):
    pass


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise _BadRequest(f"{name} must be a positive integer")
    value = int(raw)
    if value < low:
        raise _BadRequest(f"{name} must be >= {low}")
    # A legacy system: it does not refuse large pages, it just caps them.
    return min(value, high) if high is not None else value


def _error(status: int, message: str, media_type: str = JSON) -> Response:
    if media_type == FHIR_JSON:
        body = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found" if status == 404 else "invalid",
                       "diagnostics": message}],
        }
        return Response(orjson.dumps(body), status, media_type=FHIR_JSON)
    return Response(orjson.dumps({"error": message}), status, media_type=JSON)


def create_legacy_app(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> Starlette:
    """The legacy API over `count` synthetic patients (ids "1".."count", plus the decoys)."""
    store = patient_store(count, seed)

    async def health(request: Request) -> Response:
        return Response(orjson.dumps({"status": "ok", "patients": store.count}), media_type=JSON)

    async def read_patient(request: Request) -> Response:
        body = store.json(request.path_params["id"])
        if body is None:
            return _error(404, "patient not found")
        return Response(body, media_type=JSON)

    async def search_patients(request: Request) -> Response:
        try:
            page = _int_param(request, "page", 1, 1, None)
            size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        except _BadRequest as exc:
            return _error(400, str(exc))
        params = request.query_params
        ids = store.search(params.get("last_name", ""), params.get("birth_date", ""))
        items = store.json_many(ids[(page - 1) * size : page * size])
        links = {"self": str(request.url)}
        headers = {}
        if page * size < len(ids):  # absolute, built from the Host it was reached at
            links["next"] = str(request.url.include_query_params(page=page + 1))
            headers["Link"] = f'<{links["next"]}>; rel="next"'
        body = b'{"items":[%s],"page":%d,"total":%d,"links":%s}' % (
            b",".join(items), page, len(ids), orjson.dumps(links))
        return Response(body, media_type=JSON, headers=headers)

    async def read_fhir_patient(request: Request) -> Response:
        body = store.fhir(request.path_params["id"])
        if body is None:
            return _error(404, "Patient not found", FHIR_JSON)
        return Response(body, media_type=FHIR_JSON)

    async def search_fhir_patients(request: Request) -> Response:
        try:
            page = _int_param(request, "_page", 1, 1, None)
            size = _int_param(request, "_count", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        except _BadRequest as exc:
            return _error(400, str(exc), FHIR_JSON)
        params = request.query_params
        ids = store.search(params.get("family", ""), params.get("birthdate", ""))
        base = str(request.base_url).rstrip("/")
        return Response(_bundle(base, request, store.fhir_many(ids[(page - 1) * size :
                                                                       page * size]),
                                len(ids), page, size), media_type=FHIR_JSON)

    async def export(request: Request) -> StreamingResponse:
        return StreamingResponse(_chunks(store.export_lines()), media_type=NDJSON)

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/patients", search_patients, methods=["GET"]),
        Route("/patients/{id}", read_patient, methods=["GET"]),
        Route("/fhir/Patient", search_fhir_patients, methods=["GET"]),
        Route("/fhir/Patient/{id}", read_fhir_patient, methods=["GET"]),
        Route("/export.ndjson", export, methods=["GET"]),
    ])


def _bundle(base: str, request: Request, entries: list[tuple[int, bytes]], total: int,
            page: int, size: int) -> bytes:
    """A FHIR searchset Bundle assembled from pre-serialized Patient resources."""
    links = [{"relation": "self", "url": str(request.url)}]
    if page * size < total:
        links.append({"relation": "next",
                      "url": str(request.url.include_query_params(_page=page + 1))})
    entry = b",".join(
        b'{"fullUrl":%s,"resource":%s,"search":{"mode":"match"}}'
        % (orjson.dumps(f"{base}/fhir/Patient/{pid}"), resource)
        for pid, resource in entries
    )
    return b'{"resourceType":"Bundle","type":"searchset","total":%d,"link":%s,"entry":[%s]}' % (
        total, orjson.dumps(links), entry)


async def _chunks(lines: Iterable[bytes]) -> AsyncIterator[bytes]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _EXPORT_CHUNK:
            yield b"".join(batch)
            batch.clear()
    if batch:
        yield b"".join(batch)
