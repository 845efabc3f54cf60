"""The short soak of CI: `python -m soak.run` for 40 seconds with every fault once.

Two replicas sharing a throwaway Redis, the upstream killed and restarted, Redis
restarted and killed, the JWKS endpoint down, policies reloaded, a replica drained by
SIGTERM and brought back. The soak itself checks the promises and exits 1 naming the
broken one; `make soak` runs the 30-minute version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_soak_with_faults_keeps_every_promise() -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed (scripts/test-services.sh installs it)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    run = subprocess.run([sys.executable, "-m", "soak.run", "--seconds", "40"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert '"missing_audit_lines": 0' in run.stdout
    assert '"nir_leaks": 0' in run.stdout
