"""An argparse parser whose errors are raised (`UsageError`), for sub-commands that print
one clear line and exit 2 themselves instead of argparse's exit."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")
