"""`vigie audit verify` and `vigie audit exposed`: argument parsing, output, exit codes.

Exit codes follow the contract: 0 success, 1 check failed, 2 usage error (one
line naming the file). Results go to stdout, explanations to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from vigie.argparsing import Parser, UsageError, cannot_run
from vigie.audit.exposed import exposed, exposed_fields, timestamp_bound
from vigie.audit.line import GENESIS, is_hash
from vigie.audit.notification import write_exposed
from vigie.audit.verify import verify


def main_verify(argv: list[str]) -> int:
    """`vigie audit verify FILE [FILE...] [--start HASH|genesis] [--head HASH]`."""
    parser = Parser(prog="vigie audit verify",
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
                raise UsageError(f"vigie audit verify: {name} must be 64 lowercase hex digits")
        result = verify(args.files, start=start, head=args.head)
    except (UsageError, OSError) as exc:
        return cannot_run(exc)
    if not result.ok:
        print(result.describe())
        return 1
    print(f"{', '.join(args.files)}: {result.describe()}")
    return 0


def main_exposed(argv: list[str]) -> int:
    """`vigie audit exposed FILE [FILE...] (--client C | --principal P) [--since] [--until]
    [--fields] [--format text|csv|jsonl] [--progress]`."""
    parser = Parser(prog="vigie audit exposed",
                     description="List the distinct patient references a client received.")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audit files (rotated ones and other replicas' too, any order)")
    parser.add_argument("--client", help="the client (policy 'client')")
    parser.add_argument("--since", help="ISO 8601 start, inclusive (a date: from 00:00 UTC)")
    parser.add_argument("--until", help="ISO 8601 end, inclusive (a date: the whole day, UTC)")
    parser.add_argument("--principal", "--user", dest="principal",
                        help="only this principal (pseudonym from the audit log); without "
                             "--client, across every client")
    parser.add_argument("--fields", action="store_true",
                        help="per patient, each field disclosed and its form (clear, masked, "
                             "pseudonym, generalized)")
    parser.add_argument("--format", choices=["text", "csv", "jsonl"], default="text")
    parser.add_argument("--progress", action="store_true",
                        help="show progress on stderr (default: when stderr is a terminal)")
    parser.add_argument("--workers", type=int, help="processes for large files")
    try:
        args = parser.parse_args(argv)
        if args.client is None and args.principal is None:
            raise UsageError("vigie audit exposed: give --client, --principal or both")
        window = [f"{name} {bound}" for name, bound in window_bounds(
            "vigie audit exposed", args.since, args.until).items()]
        progress = _progress_bar() if args.progress or sys.stderr.isatty() else None
        query = (args.files, args.client, args.since, args.until, args.principal)
        rows: list[tuple[str, dict[str, set[str]] | None]]
        if args.fields:
            rows = [*exposed_fields(*query, workers=args.workers, progress=progress)]
        else:
            rows = [(ref, None) for ref in exposed(*query, workers=args.workers,
                                                   progress=progress)]
        if progress is not None:
            sys.stderr.write("\n")
        count = write_exposed(sys.stdout, rows, args.format)
    except (UsageError, OSError) as exc:
        return cannot_run(exc)
    noun = "patient" if count == 1 else "patients"
    if args.format == "text":
        print(f"{count} {noun}")
    scope = " and ".join(part for part in (
        args.client and f"client {args.client}",
        args.principal and f"principal {args.principal}") if part)
    print(f"{count} distinct {noun} disclosed to {scope}"
          f" ({', '.join(window) or 'whole log'}, UTC)", file=sys.stderr)
    return 0


def _progress_bar() -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(share * 30)
        sys.stderr.write(f"\rscanning [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{share:4.0%} of {total / 1e6:,.0f} MB")
        sys.stderr.flush()
    return show


def window_bounds(prog: str, since: str | None, until: str | None) -> dict[str, str]:
    """`{"since": ..., "until": ...}` as audit timestamps, for the bounds given (inclusive;
    a date alone is its whole day); UsageError naming the option otherwise."""
    bounds = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                bounds[name] = timestamp_bound(value, end_of_day=name == "until").decode()
            except ValueError:
                raise UsageError(f"{prog}: --{name}: not ISO 8601: {value!r} "
                                 "(example: 2026-12-04T15:30:00Z)") from None
    return bounds
