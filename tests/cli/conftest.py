"""Run `python -m vigie ...` as a user does: a subprocess, its exit code and output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class Run:
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.code = result.returncode
        self.out = result.stdout
        self.err = result.stderr
        self.lines = [line for line in result.stdout.splitlines() if line]


def vigie(*args: str | Path, cwd: Path | None = None) -> Run:
    result = subprocess.run([sys.executable, "-m", "vigie", *map(str, args)],
                            capture_output=True, text=True, timeout=60, cwd=cwd or REPO)
    return Run(result)


@pytest.fixture
def run() -> type[Run]:
    return Run
