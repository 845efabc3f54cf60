"""`vigie audit verify` and `vigie audit exposed`: argument parsing, output, exit codes.

Exit codes follow the contract: 0 success, 1 check failed, 2 usage error (one
line naming the file). Results go to stdout, explanations to stderr.
"""

from __future__ import annotations

import argparse
import sys

from vigie.audit.exposed import exposed, timestamp_bound
from vigie.audit.line import GENESIS, is_hash
from vigie.audit.verify import verify


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def main_verify(argv: list[str]) -> int:
    """`vigie audit verify FILE [FILE...] [--start HASH|genesis] [--head HASH]`."""
    parser = _Parser(prog="vigie audit verify",
                     description="Check the hash chain of audit files, given in order.")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audit files, oldest first (rotated files then the live one)")
    parser.add_argument("--start", help="expected prev of the first line ('genesis' or a hash)")
    parser.add_argument("--head", help="expected hash of the last line (an anchor kept apart)")
    try:
        args = parser.parse_args(argv)
        start = GENESIS if args.start == "genesis" else args.start
        for name, value in (("--start", start), ("--head", args.head)):
            if value is not None and not is_hash(value):
                raise _UsageError(f"vigie audit verify: {name} must be 64 lowercase hex digits")
        result = verify(args.files, start=start, head=args.head)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{exc.filename}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    if not result.ok:
        print(result.describe())
        return 1
    print(f"{', '.join(args.files)}: {result.describe()}")
    return 0


def main_exposed(argv: list[str]) -> int:
    """`vigie audit exposed FILE [FILE...] --client C [--since] [--until] [--user PSEUDONYM]`."""
    parser = _Parser(prog="vigie audit exposed",
                     description="List the distinct patient references a client received.")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audit files (rotated ones too, in any order)")
    parser.add_argument("--client", required=True, help="the client (policy 'client')")
    parser.add_argument("--since", help="ISO 8601 start, inclusive (a date: from 00:00 UTC)")
    parser.add_argument("--until", help="ISO 8601 end, inclusive (a date: the whole day, UTC)")
    parser.add_argument("--user", help="only this principal (pseudonym from the audit log)")
    parser.add_argument("--workers", type=int, help="processes for large files")
    try:
        args = parser.parse_args(argv)
        window = []
        for name in ("since", "until"):
            value = getattr(args, name)
            if value is not None:
                try:
                    bound = timestamp_bound(value, end_of_day=name == "until").decode()
                except ValueError as exc:
                    raise _UsageError(f"vigie audit exposed: --{name}: not ISO 8601: "
                                      f"{value!r}") from exc
                window.append(f"{name} {bound}")
        refs = exposed(args.files, args.client, args.since, args.until, args.user,
                       workers=args.workers)
        count = 0
        write = sys.stdout.write
        for ref in refs:
            write(ref + "\n")
            count += 1
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{exc.filename}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    noun = "patient" if count == 1 else "patients"
    print(f"{count} {noun}")
    scope = f"client {args.client}" + (f", user {args.user}" if args.user else "")
    print(f"{count} distinct {noun} disclosed to {scope}"
          f" ({', '.join(window) or 'whole log'}, UTC)", file=sys.stderr)
    return 0
