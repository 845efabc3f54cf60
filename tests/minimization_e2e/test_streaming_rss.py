"""A large NDJSON export streams through a real `vigie serve` process in bounded memory.

vigie runs as a subprocess (its RSS is then its own); the upstream streams 200k
records (~90 MiB, each with a large unlisted field) and the test reads the
minimized export record by record, checking every record, while the vigie
process's peak RSS (VmHWM) must stay well under the size of the body.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

NIR = "185057800608491"
RECORDS_PER_PIECE = 2000
PIECES = 100  # 200k records
POLICY = """\
client: exporter
routes:
  - name: export
    methods: [GET]
    path: /export.ndjson
    scopes: [export]
    response:
      records: "$"
      fields:
        id: keep
        nir: {mask: last2}
        birth_date: {generalize: year}
      unlisted: drop
limits:
  requests: 1000/minute
  records: 1000000000/day
  distinct_patients: 1000000000/day
  enumeration: false
"""


def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "export_rss.py"
    spec = importlib.util.spec_from_file_location("export_rss", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("export_rss", module)
    spec.loader.exec_module(module)
    return module


def piece() -> bytes:
    history = "consultation de suivi, aucun changement de traitement. " * 7
    return b"".join(orjson.dumps({"id": i, "nir": NIR, "birth_date": "1985-05-17",
                                  "last_name": "Durand", "history": history}) + b"\n"
                    for i in range(RECORDS_PER_PIECE))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_large_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    b = bench()
    data = piece()
    total = len(data) * PIECES
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"Authorization": f"Bearer {b.token(key, 'exporter', 'export')}"}
    expected_line = orjson.dumps({"id": 0, "nir": "*************91", "birth_date": "1985"})
    with b.serve(b.upstream_app(total, data)) as upstream, b.serve(b.jwks_app(key)) as jwks, \
            b.vigie(tmp_path, upstream, jwks, POLICY) as (pid, base), \
            httpx.Client(base_url=base, timeout=30) as client:
        warm = client.get(f"/export.ndjson?bytes={len(data)}", headers=headers)
        assert warm.status_code == 200 and warm.content.split(b"\n", 1)[0] == expected_line
        rss_before = b.status_kb(pid, "VmRSS")
        records = 0
        tail = b""
        with client.stream("GET", "/export.ndjson", headers=headers) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    assert line == expected_line.replace(b'"id":0', b'"id":%d' % (
                        records % RECORDS_PER_PIECE)), line
                    records += 1
        assert tail == b""
        peak = b.status_kb(pid, "VmHWM")
    assert records == RECORDS_PER_PIECE * PIECES
    growth_mib = (peak - rss_before) / 1024
    body_mib = total / 1024 ** 2
    assert body_mib > 80
    # Buffering would cost more than the body; what grows is per record, not per byte:
    # the audit line's patient references and the guard's digests of them (~170 B each).
    assert growth_mib < body_mib / 2, f"vigie grew {growth_mib:.1f} MiB for {body_mib:.0f} MiB"
