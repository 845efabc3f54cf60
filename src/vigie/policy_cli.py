"""`vigie policy suggest` and `vigie policy report`: argument parsing, output, exit codes.

Exit codes as for the other commands: 0 success, 1 the evidence cannot be used
(broken audit, foreign usage log, client never seen) or the policies are
invalid, 2 usage error or unreadable file. Results go to stdout (or `--out`),
explanations and progress to stderr.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

from vigie.audit.line import GENESIS
from vigie.errors import ConfigError
from vigie.policy.model import ClientPolicy
from vigie.policy.purposes import PURPOSES


def add_policy_commands(psub: Any) -> None:
    """Add `suggest` and `report` to the `vigie policy` sub-commands."""
    suggest = psub.add_parser("suggest", help="least-privilege policy from the audit log")
    suggest.add_argument("--audit", required=True, action="append", metavar="FILE",
                         help="audit file; repeat for rotated files, oldest first")
    suggest.add_argument("--usage", action="append", default=[], metavar="FILE",
                         help="usage log written in report-only (audit.usage_path)")
    suggest.add_argument("--client", required=True)
    suggest.add_argument("--since", help="ISO 8601: ignore what happened before")
    suggest.add_argument("--diff", type=Path, metavar="POLICY",
                         help="the client's current policy file: print what changes")
    suggest.add_argument("--purpose", choices=sorted(PURPOSES),
                         help="the client's purpose, if its policy does not declare one")
    suggest.add_argument("--out", type=Path, metavar="DIR",
                         help="write DIR/CLIENT.yaml and DIR/CLIENT.test.yaml")
    report = psub.add_parser("report", help="the register of who sees what, for the DPO")
    report.add_argument("dir", type=Path)
    report.add_argument("--format", choices=["md", "html"], default="md")
    report.add_argument("--output", "-o", type=Path, help="write to this file (default stdout)")


def run_policy_command(args: argparse.Namespace) -> int:
    if args.policy_command == "suggest":
        return _suggest(args)
    return _report(args)


def _suggest(args: argparse.Namespace) -> int:
    from vigie.audit.exposed import timestamp_bound
    from vigie.learn.diff import deployment_warnings
    from vigie.learn.evidence import EvidenceError, read_evidence, stderr_progress
    from vigie.learn.suggest import suggest
    from vigie.policy.loader import load_policy_file

    current = None
    try:
        if args.since is not None:
            timestamp_bound(args.since, end_of_day=False)
        if args.diff is not None:
            current = load_policy_file(args.diff)
            if current.client != args.client:
                return _fail(f"{args.diff} is the policy of {current.client!r}, "
                             f"not {args.client!r}", 2)
        evidence = read_evidence(args.audit, args.client, usage_files=args.usage,
                                 since=args.since, progress=stderr_progress())
    except EvidenceError as exc:
        return _fail(str(exc), 1)
    except ValueError:
        return _fail(f"--since: not ISO 8601: {args.since!r}", 2)
    except OSError as exc:
        return _fail(f"{exc.filename}: cannot read: {exc.strerror}", 2)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    for warning in evidence.warnings:
        _say(f"warning: {warning}")
    origin = "genesis" if evidence.chain_start == GENESIS else evidence.chain_start
    _say(f"{evidence.lines} audit lines read from {', '.join(args.audit)}, chain intact "
         f"(from {origin} to {evidence.chain_head})")
    if evidence.client_lines == 0:
        seen = ", ".join(name for name, _ in evidence.other_clients.most_common(10)) or "none"
        return _fail(f"client {args.client!r} never appears in the audit"
                     f"{' since ' + args.since if args.since else ''} (clients seen: {seen})", 1)
    suggestion = suggest(evidence, current, args.purpose)
    for warning in deployment_warnings(evidence, current):
        _say(f"warning: {warning}")
    for note in suggestion.notes:
        _say(f"note: {note}")
    if not suggestion.policy["routes"]:
        return _fail(f"nothing to suggest: no route of {args.client} can be learnt from this "
                     "evidence", 1)
    text = _header(args, evidence.client_lines, suggestion.notes) + dump_yaml(suggestion.policy)
    _output(args, current, suggestion.policy, text)
    return 0


def _say(message: str) -> None:
    print(f"vigie policy suggest: {message}", file=sys.stderr)


def _fail(message: str, code: int) -> int:
    _say(message)
    return code


def _output(args: argparse.Namespace, current: ClientPolicy | None, policy: dict[str, Any],
            text: str) -> None:
    """`--out`: the policy and its tests; `--diff`: a summary and the diff; else the policy."""
    from vigie.learn.diff import summarize
    from vigie.learn.testgen import policy_tests

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.client}.yaml").write_text(text, encoding="utf-8")
        (args.out / f"{args.client}.test.yaml").write_text(
            f"# Policy tests for the suggested {args.client} policy: "
            f"`vigie policy test {args.out}`.\n" + dump_yaml(policy_tests(policy)),
            encoding="utf-8")
        _say(f"wrote {args.out / (args.client + '.yaml')} and its .test.yaml")
    if current is not None:
        for line in summarize(current, policy):
            print(f"# {line}")
        old = args.diff.read_text(encoding="utf-8").splitlines(keepends=True)
        sys.stdout.writelines(difflib.unified_diff(old, text.splitlines(keepends=True),
                                                   str(args.diff), "suggested"))
    elif args.out is None:
        sys.stdout.write(text)


def _header(args: argparse.Namespace, requests: int, notes: list[str]) -> str:
    lines = ["# yaml-language-server: $schema=https://vigie.dev/schemas/policy/v1.json",
             f"# Suggested by `vigie policy suggest` from {requests} requests of "
             f"{args.client}; review, then `vigie policy check` and `vigie policy test`."]
    lines += [f"# note: {note}" for note in notes]
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block style, with short lists and one-key actions in flow style (`{generalize: year}`)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # repeated claims stay written out: a reader should not chase anchors


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = len(data) == 1 and all(isinstance(v, str) for v in data.values()) \
        and next(iter(data)) in ("mask", "generalize")
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _report(args: argparse.Namespace) -> int:
    from vigie.policy.loader import load_policies
    from vigie.register import render

    try:
        policies = load_policies(args.dir)
    except ConfigError as exc:
        print(f"vigie policy report: {exc}", file=sys.stderr)
        return 1
    text = render(policies, args.format, title_source=str(args.dir))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
