"""Logs never carry an exception's message: it may hold a value (a NIR, a name, a token).

Every handler logs the exception's type only; tracebacks (`log.exception`,
`exc_info=`) would print the message too.
"""

from __future__ import annotations

import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "vigie"
FORBIDDEN = re.compile(r"\.exception\(|exc_info\s*=|traceback\.print_exc|print_exception\(")


def test_no_traceback_logging_in_the_source() -> None:
    offenders = [f"{path.relative_to(SOURCE)}:{number}"
                 for path in sorted(SOURCE.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if FORBIDDEN.search(line)]
    assert offenders == []


def test_the_rule_sees_a_traceback_call() -> None:
    assert FORBIDDEN.search('        log.exception("guard observe failed")')
    assert FORBIDDEN.search("log.error('x', exc_info=True)")
