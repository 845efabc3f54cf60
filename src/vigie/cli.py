"""The `vigie` command line (contract section 1)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    del argv
    print("vigie: not yet wired", file=sys.stderr)
    return 2
