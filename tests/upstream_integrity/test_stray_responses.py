"""Every client option, http and https: each caller gets its own patient, or a 502/504.

The issue's table: four requests in a row (patients 1, 7, 8, 9) against an upstream
that misbehaves once. Whatever it does, no caller may receive another request's
bytes, and the ones after the misbehaviour are answered correctly.
"""

from __future__ import annotations

import asyncio

import pytest

from support.legacy_patients import NAMES, legacy_server, patient_json
from support.upstream_pki import Pki
from upstream_integrity.conftest import CLIENTS, client_for
from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.forward import Forwarder

CASES = ("second_immediate", "second_late", "second_idle", "head_body", "body_204",
         "body_304", "cl_shorter", "cl_longer", "interim", "upgrade", "close_mid_body")
PATIENTS = ("1", "7", "8", "9")


async def ask(client: Forwarder, pid: str, method: str = "GET") -> tuple[int, bytes] | str:
    """(status, body) of one request, or the name of the 502/504 it became."""
    try:
        response = await client.send(method, f"/patients/{pid}", "",
                                     [("x-request-id", f"req-{pid}")], None)
        try:
            return response.status, await response.read(1 << 20)
        finally:
            await response.aclose()
    except UpstreamTimeout:
        return "UpstreamTimeout"
    except UpstreamError:  # StaleConnection included
        return "UpstreamError"


def assert_own(pid: str, result: tuple[int, bytes] | str, *, must_succeed: bool) -> None:
    if isinstance(result, str):
        assert not must_succeed, f"patient {pid}: {result}"
        return
    status, body = result
    for other, name in NAMES.items():
        if other != pid:
            assert name.encode() not in body, f"patient {pid}'s caller got patient {other}"
    if must_succeed:
        assert (status, body) == (200, patient_json(pid))
    else:
        assert patient_json(pid).startswith(body), body  # its own, possibly cut short


async def _table(kind: str, url: str, case: str, pki: Pki | None, **options: object
                 ) -> tuple[list[tuple[int, bytes] | str], list[str]]:
    discarded: list[str] = []
    timeout = 0.5 if case == "cl_longer" else 5.0
    client = client_for(kind, url, pki, timeout=timeout, on_discard=discarded.append,
                        **options)
    results = []
    try:
        first_method = "HEAD" if case == "head_body" else "GET"
        results.append(await ask(client, "1", first_method))
        if case == "second_idle":
            await _stray_arrived_while_idle(kind, discarded)
        for pid in PATIENTS[1:]:
            results.append(await ask(client, pid))
    finally:
        await client.close()
    return results, discarded


_SERVERS: dict[str, object] = {}


async def _stray_arrived_while_idle(kind: str, discarded: list[str]) -> None:
    server = _SERVERS["current"]
    server.idle.set()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(server.stray_sent.wait, 5)  # type: ignore[attr-defined]
    if kind == "native":  # the pooled connection must notice and go (libraries never pool)
        async with asyncio.timeout(5):
            while "idle_bytes" not in discarded:
                await asyncio.sleep(0.005)


def check_table(case: str, results: list[tuple[int, bytes] | str]) -> None:
    first, *rest = results
    if case == "head_body":
        assert first in ((200, b""), "UpstreamError"), first
    elif case in ("body_204", "body_304"):
        assert first in ((int(case[-3:]), b""), "UpstreamError"), first
    elif case in ("upgrade", "close_mid_body"):
        assert first == "UpstreamError", first
    elif case == "cl_longer":
        assert first in ("UpstreamTimeout", "UpstreamError"), first
    else:
        assert_own("1", first, must_succeed=case in ("interim", "second_idle"))
    seven, eight, nine = rest
    assert_own("7", seven, must_succeed=case != "second_late")
    assert_own("8", eight, must_succeed=True)
    assert_own("9", nine, must_succeed=True)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("case", CASES)
async def test_each_caller_gets_its_own_patient_with_correlation(
        case: str, kind: str, scheme: str, pki: Pki) -> None:
    tls = pki.server_context() if scheme == "https" else None
    with legacy_server(case, tls) as server:
        _SERVERS["current"] = server
        results, discarded = await _table(kind, server.url, case, pki,
                                          echoes_request_id=True)
    check_table(case, results)
    if case == "second_late":  # told apart by its id only: refused, then discarded
        assert results[1] == "UpstreamError" or kind != "native", results
        if kind == "native":
            assert "request_id_mismatch" in discarded
    assert "GET /admin" not in " ".join(line.decode() for line in server.seen)


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("case", [c for c in CASES if c != "second_late"])
async def test_framing_alone_protects_without_correlation(case: str, kind: str,
                                                          pki: Pki) -> None:
    with legacy_server(case) as server:
        _SERVERS["current"] = server
        results, discarded = await _table(kind, server.url, case, pki)
    check_table(case, results)
    if kind == "native" and case in ("second_immediate", "second_idle", "head_body",
                                     "body_204", "body_304", "cl_shorter"):
        assert discarded, "the spoiled connection was not counted"


@pytest.mark.parametrize("kind", CLIENTS)
async def test_late_stray_without_correlation_needs_keepalive_off(kind: str,
                                                                  pki: Pki) -> None:
    """With neither correlation nor keep-alive, the late stray has no connection to ride."""
    with legacy_server("second_late") as server:
        _SERVERS["current"] = server
        results, _ = await _table(kind, server.url, "second_late", pki, keepalive=False)
    assert results == [(200, patient_json(pid)) for pid in PATIENTS]
    assert server.connections == 4
