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
    ptest = psub.add_parser("test", help="run the *.test.yaml files in DIR")
    ptest.add_argument("dir", type=Path)
    explain = psub.add_parser("explain", help="show what a request would get")
    explain.add_argument("dir", type=Path)
    explain.add_argument("--client", required=True)
    explain.add_argument("--method", default="GET")
    explain.add_argument("--path", required=True)

    audit = sub.add_parser("audit", help="verify the audit log, list exposed patients")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser("verify", help="check the hash chain")
    verify.add_argument("files", nargs="+")
    exposed = asub.add_parser("exposed", help="patients a client received in a window")
    exposed.add_argument("file")
    exposed.add_argument("--client", required=True)
    exposed.add_argument("--since")
    exposed.add_argument("--until")
    exposed.add_argument("--user", help="only this user (its pseudonym, as in the log)")
    return parser


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Client libraries log request URLs at INFO: paths carry patient ids, queries names.
    for name in ("httpx", "httpcore", "aiohttp.access", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args, argv)
    except ConfigError as exc:
        print(f"vigie: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
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
    if args.command == "audit":
        from vigie import audit

        rest = argv[argv.index(args.audit_command) + 1:]
        if args.audit_command == "verify":
            return audit.main_verify(rest)
        return audit.main_exposed(rest)
    return 2


def _serve(config: Path | None) -> int:
    from vigie.config import load_settings

    _logging()
    settings = load_settings(config)  # before the heavy imports: a bad key fails fast
    from vigie.server import run

    try:
        run(settings)
    except OSError as exc:
        where = settings.source or "<environment>"
        print(f"vigie: {where}: cannot listen: {exc.strerror} (key 'listen' or 'admin')",
              file=sys.stderr)
        return 2
    return 0


def _policy(args: argparse.Namespace) -> int:
    if args.policy_command == "check":
        from vigie.policy.loader import check_policies

        errors = check_policies(args.dir)
        for line in errors:
            print(line)
        if not errors:
            print(f"{args.dir}: policies valid")
        return 1 if errors else 0
    if args.policy_command == "explain":
        from vigie.policy.explain import explain

        print(explain(args.dir, args.client, args.method, args.path))
        return 0
    from vigie.policy.testing import run_policy_tests

    return run_policy_tests(args.dir)
