"""The `vigie` command line (contract section 1).

Exit codes: 0 success, 1 check failed, 2 usage or configuration error (one
line that names the file and the key).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vigie import __version__
from vigie.errors import ConfigError
from vigie.incident.commands import COMMANDS as INCIDENT_COMMANDS
from vigie.incident.commands import add_incident_commands, run_incident_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigie", description=(
        "Data-minimization proxy for patient-management APIs."))
    parser.add_argument("--version", action="version", version=f"vigie {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy and the admin listener")
    serve.add_argument("--config", type=Path, default=None,
                       help="vigie.yaml (VIGIE_* environment variables override it)")

    sub.add_parser("demo", help="run a synthetic legacy API, a token issuer and the proxy")

    attack = sub.add_parser("attack", help="simulate extraction styles against the demo")
    attack.add_argument("--style", choices=["all", "sequential", "slow-sequential", "paging",
                                            "many-accounts", "parallel-burst", "spread"],
                        default="all")
    attack.add_argument("--redis", default=None,
                        help="share guard state in this Redis (use a scratch database)")
    attack.add_argument("--replicas", type=int, default=1,
                        help="proxies the attack is spread over, round-robin (default 1)")
    attack.add_argument("--budget-seconds", type=float, default=20.0,
                        help="time given to each style (default 20)")
    attack.add_argument("--json", action="store_true", help="print the results as JSON")

    policy = sub.add_parser("policy", help="check, test and explain policies")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser("check", help="validate every policy file in DIR")
    check.add_argument("dir", type=Path)
    check.add_argument("--strict", action="store_true",
                       help="also require the metadata: owner, purpose, legal basis, ...")
    ptest = psub.add_parser("test", help="run the *.test.yaml files in DIR")
    ptest.add_argument("dir", type=Path)
    explain = psub.add_parser("explain", help="show what a request would get")
    explain.add_argument("dir", type=Path)
    explain.add_argument("--client", required=True)
    explain.add_argument("--method", default="GET")
    explain.add_argument("--path", required=True)
    from vigie.policy_cli import add_policy_commands  # suggest, report (issue #18)

    add_policy_commands(psub)

    audit = sub.add_parser("audit", help="verify the audit log, list exposed patients")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    # Each parses its own arguments (vigie.audit.cli); listed here for `vigie audit --help`.
    asub.add_parser("verify", help="check the hash chain", add_help=False)
    asub.add_parser("exposed", add_help=False,
                    help="patients a client or a principal received in a window")
    add_incident_commands(sub)
    return parser


def _logging(log_format: str = "text", level: str = "info") -> None:
    from vigie.telemetry.logs import configure

    configure(log_format, level)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in INCIDENT_COMMANDS:  # these parse their own arguments
            return run_incident_command(argv[0], argv[1:])
        if argv[:1] == ["audit"] and argv[1:2] in (["verify"], ["exposed"]):
            from vigie import audit

            run = audit.main_verify if argv[1] == "verify" else audit.main_exposed
            return run(argv[2:])
        return _dispatch(_parser().parse_args(argv))
    except ConfigError as exc:
        print(f"vigie: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args.config)
    if args.command == "demo":
        _logging()
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # four servers: quiet
        from vigie.demo.runner import run_demo

        return run_demo()
    if args.command == "attack":
        _logging()
        from vigie.demo.attack import main as attack_main

        return int(attack_main(args.style, args.budget_seconds, args.json, args.redis,
                               max(1, args.replicas)))
    if args.command == "policy":
        return _policy(args)
    return 2


def _serve(config: Path | None) -> int:
    from vigie.config import load_settings

    _logging()
    settings = load_settings(config)  # before the heavy imports: a bad key fails fast
    _logging(settings.log_format, settings.log_level)
    from vigie.server import run

    try:
        code = run(settings)
    except OSError as exc:
        where = settings.source or "<environment>"
        print(f"vigie: {where}: cannot listen: {exc.strerror} (key 'listen' or 'admin')",
              file=sys.stderr)
        return 2
    return code


def _policy(args: argparse.Namespace) -> int:
    if args.policy_command == "check":
        from vigie.policy.loader import check_policies

        errors = check_policies(args.dir, strict=args.strict)
        for line in errors:
            print(line)
        if not errors:
            from vigie.policy.fhir import fhir_warnings
            from vigie.policy.loader import load_policies

            for policy in load_policies(args.dir).clients.values():
                for warning in fhir_warnings(policy):
                    print(warning)
            print(f"{args.dir}: policies valid")
        return 1 if errors else 0
    if args.policy_command in ("suggest", "report"):
        from vigie.policy_cli import run_policy_command

        return run_policy_command(args)
    if args.policy_command == "explain":
        from vigie.policy.explain import explain

        print(explain(args.dir, args.client, args.method, args.path))
        return 0
    from vigie.policy.testing import run_policy_tests

    return run_policy_tests(args.dir)
