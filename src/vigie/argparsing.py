"""An argparse parser whose errors are raised (`UsageError`), for sub-commands that print
one clear line and exit 2 themselves instead of argparse's exit."""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def cannot_run(exc: UsageError | OSError) -> int:
    """Print why a command cannot run (its usage, or a file it cannot read): exit status 2."""
    if isinstance(exc, UsageError):
        print(exc, file=sys.stderr)
    else:
        print(f"{exc.filename}: cannot read: {exc.strerror}", file=sys.stderr)
    return 2
