"""Two processes writing one audit file through a `SharedChain`: one chain, rotations too."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from vigie.audit import AuditLog, verify
from vigie.audit.log import rotated_files
from vigie.audit.shared import SharedChain
from vigie.config import AuditSettings
from vigie.context import Decision
from vigie.telemetry.metrics import Metrics

LINES = 150


def _write(path: str, chain: SharedChain | None, worker: int, rotate_bytes: int,
           opened: Barrier) -> None:
    log = AuditLog(AuditSettings(path=path, rotate_bytes=rotate_bytes),
                   Metrics(process_collectors=False), shared=chain)
    opened.wait(30)  # both have read the file's (empty) tail before either writes
    for n in range(LINES):
        log.record(Decision(request_id=f"w{worker}-{n}", method="GET", client="app",
                            route="read", status=200, patients=[f"{worker}-{n}"]), "psn-x")
    log.close()


def _run_two(path: Path, chain: SharedChain | None, rotate_bytes: int) -> None:
    context = multiprocessing.get_context("fork")
    opened = context.Barrier(2)
    workers = [context.Process(target=_write, args=(str(path), chain, w, rotate_bytes, opened))
               for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0


@pytest.mark.parametrize("rotate_bytes", [0, 4000])
def test_two_writers_make_one_valid_chain(tmp_path: Path, rotate_bytes: int) -> None:
    path = tmp_path / "audit.jsonl"
    _run_two(path, SharedChain(), rotate_bytes)
    files = [*rotated_files(path), path]
    if rotate_bytes:
        assert len(files) > 10  # rotated by both writers, in turn
    result = verify(files)
    assert result.ok, result
    assert result.lines == 2 * LINES
    ids = [line for file in files for line in file.read_text().splitlines()]
    assert sum('"w0-' in line for line in ids) == sum('"w1-' in line for line in ids) == LINES


def test_without_the_shared_chain_the_writers_break_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _run_two(path, None, 0)
    assert not verify(path).ok  # what SharedChain prevents (and what this test would miss)
    assert os.path.getsize(path) > 0
