"""The incident sub-commands of `vigie`, dispatched before the main parser sees them.

`vigie revoke ...`, `vigie contain ...` and `vigie incident timeline ...` parse their own
arguments (vigie.incident.cli, vigie.incident.timeline_cli); the main parser only lists them.
"""

from __future__ import annotations

import argparse

COMMANDS = {
    "revoke": "revoke tokens at the proxy (client, user, jti; list, lift)",
    "contain": "containment switches: deny, read-only, minimal (list, lift)",
    "incident": "incident timeline of a principal from the audit log and security events",
}


def add_incident_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)


def run_incident_command(command: str, argv: list[str]) -> int:
    if command == "revoke":
        from vigie.incident.cli import main_revoke

        return main_revoke(argv)
    if command == "contain":
        from vigie.incident.cli import main_contain

        return main_contain(argv)
    from vigie.incident.timeline_cli import main_incident

    return main_incident(argv)
