"""A minimal vigie.yaml on disk, for tests of how settings are read and refused."""

from __future__ import annotations

from pathlib import Path


def minimal_config(tmp: Path, extra: str = "") -> Path:
    """`upstream` and an empty `policies` folder, then `extra` (YAML lines) from line 3."""
    (tmp / "policies").mkdir(exist_ok=True)
    path = tmp / "vigie.yaml"
    path.write_text(f"upstream: http://127.0.0.1:9\npolicies: ./policies\n{extra}")
    return path
