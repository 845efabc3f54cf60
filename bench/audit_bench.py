"""Audit log benchmark: write throughput, and `exposed` over a synthetic 10-million-line log.

    .venv/bin/python bench/audit_bench.py [--lines 10000000] [--file /tmp/vigie-audit-bench.log]
                                          [--regenerate] [--verify]

The file is generated once (a valid hash chain, the writer's exact line format,
synthetic patients only) and reused on later runs. Traffic shape: 40 clients with
a skewed share (the largest ~25% of lines), 5 000 principals, 2 million patient
ids, 70% single-record reads, 20% searches of 5-20 records, 10% refused requests.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from vigie.audit import GENESIS, AuditLog, exposed, verify
from vigie.audit.line import seal
from vigie.config import AuditSettings
from vigie.context import Decision
from vigie.telemetry.metrics import Metrics

START = 1_793_232_000.0  # 2026-10-29T00:00:00Z: thirty days before 2026-11-28
SPAN_SECONDS = 30 * 86400
CLIENTS = [f"client-{n:02d}" for n in range(40)]
WEIGHTS = [1.0 / (n + 1) for n in range(40)]  # Zipf-like: client-00 ~ 23%, client-09 ~ 2.3%


def generate(path: Path, lines: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    clients = rng.choices(CLIENTS, WEIGHTS, k=100_000)
    prev = GENESIS
    step = SPAN_SECONDS / lines
    begun = time.perf_counter()
    with path.open("wb", buffering=16 * 1024 * 1024) as out:
        for index in range(lines):
            wall = START + index * step
            second = int(wall)
            kind = rng.random()
            if kind < 0.7:
                patients, status, route = [str(rng.randrange(2_000_000))], 200, "read-patient"
            elif kind < 0.9:
                patients = [str(rng.randrange(2_000_000)) for _ in range(rng.randint(5, 20))]
                status, route = 200, "search-patients"
            else:
                patients, status, route = [], rng.choice((403, 404, 429)), "read-patient"
            record = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                + f".{int((wall - second) * 1000):03d}Z",
                "request_id": f"{index:016x}", "client": clients[index % 100_000],
                "principal": f"psn-{rng.randrange(5000):026d}", "route": route, "method": "GET",
                "status": status, "decision": "allowed" if status == 200 else "denied",
                "patients": patients, "fields": ["birth_date", "first_name", "id", "last_name"],
                "masked": 2 * len(patients), "records": len(patients), "withheld": 0,
                "anomaly_score": 0.0, "mode": "enforce", "reason": None, "would_block": None,
                "prev": prev,
            }
            line, prev = seal(record)
            out.write(line)
            if index and index % 1_000_000 == 0:
                print(f"  generated {index:,} lines ({time.perf_counter() - begun:.0f} s)",
                      file=sys.stderr)
    (path.parent / (path.name + ".lines")).write_text(str(lines))


def write_throughput(count: int = 200_000) -> float:
    with tempfile.TemporaryDirectory() as folder:
        log = AuditLog(AuditSettings(path=os.path.join(folder, "audit.log")),
                       Metrics(process_collectors=False))
        decision = Decision(request_id="0123456789abcdef", method="GET", client="client-01",
                            route="read-patient", status=200, patients=["123456"],
                            fields={"id", "last_name", "first_name", "birth_date"},
                            masked=Counter(mask=1, generalize=1), records=1)
        begun = time.perf_counter()
        for _ in range(count):
            log.record(decision, "psn-00000000000000000000000042")
        elapsed = time.perf_counter() - begun
        log.close()
    return count / elapsed


def timed_exposed(path: Path, label: str, client: str, **window: str) -> None:
    begun = time.perf_counter()
    refs = sum(1 for _ in exposed(path, client, **window))
    elapsed = time.perf_counter() - begun
    print(f"exposed {label:<42} {elapsed:6.1f} s  {refs:>9,} patients")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--file", type=Path,
                        default=Path(tempfile.gettempdir()) / "vigie-audit-bench.log")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--verify", action="store_true", help="also time a full verify")
    args = parser.parse_args()

    print(f"write: {write_throughput():,.0f} lines/s (AuditLog.record, flush per line)")
    marker = args.file.parent / (args.file.name + ".lines")
    if args.regenerate or not marker.exists() or marker.read_text() != str(args.lines):
        begun = time.perf_counter()
        generate(args.file, args.lines)
        print(f"generated {args.lines:,} lines in {time.perf_counter() - begun:.0f} s")
    size = args.file.stat().st_size
    print(f"file: {args.file} {args.lines:,} lines, {size / 1e9:.2f} GB, "
          f"{os.cpu_count()} CPUs")
    timed_exposed(args.file, "client-09 (~2% of lines), whole log", "client-09")
    timed_exposed(args.file, "client-00 (~23% of lines), whole log", "client-00")
    timed_exposed(args.file, "client-00, one week", "client-00",
                  since="2026-11-10", until="2026-11-16")
    timed_exposed(args.file, "absent client", "nobody")
    if args.verify:
        begun = time.perf_counter()
        result = verify(args.file, start=GENESIS)
        print(f"verify: {result.describe()[:40]}... {time.perf_counter() - begun:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
