"""`vigie incident timeline --principal P [--since T] [--until T] [--events FILE] AUDIT...`.

Exit 0 with the timeline (text, or `--format json`); 2 on bad input (a malformed time,
an unreadable file), with one line that names it.
"""

from __future__ import annotations

import sys

import orjson

from vigie.argparsing import Parser, UsageError, cannot_run
from vigie.audit.cli import window_bounds
from vigie.incident.timeline import render, timeline


def main_incident(argv: list[str]) -> int:
    parser = Parser(prog="vigie incident", description="Incident reports.")
    sub = parser.add_subparsers(dest="what", required=True, parser_class=Parser)
    line = sub.add_parser("timeline", help="one principal's timeline, for a notification")
    line.add_argument("audit", nargs="+", metavar="AUDIT_FILE",
                      help="audit files (rotated ones and other replicas' too)")
    line.add_argument("--principal", required=True, help="the pseudonym from the audit log")
    line.add_argument("--since", help="ISO 8601 start (a date: from 00:00 UTC)")
    line.add_argument("--until", help="ISO 8601 end (a date: the whole day, UTC)")
    line.add_argument("--events", action="append", default=[], metavar="FILE",
                      help="security events file (guard.events_path); repeat per replica")
    line.add_argument("--format", choices=["text", "json"], default="text")
    try:
        args = parser.parse_args(argv)
        bounds = window_bounds("vigie incident timeline", args.since, args.until)
        found = timeline(args.principal, args.audit, args.events, bounds.get("since"),
                         bounds.get("until"))
    except (UsageError, OSError) as exc:
        return cannot_run(exc)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(found.as_json()).decode() + "\n")
    else:
        print(render(found, bounds.get("since")))
    return 0
