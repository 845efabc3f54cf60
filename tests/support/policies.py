"""Test factories for policies and identities: write YAML, load it, build verified identities."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vigie.context import Identity
from vigie.policy.loader import load_policies
from vigie.policy.model import PolicySet

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICIES = REPO / "policies"
SCHEMA = REPO / "src" / "vigie" / "policy" / "schema.json"


def write_policies(folder: Path, files: Mapping[str, str]) -> Path:
    """Write each (dedented) text to folder/name; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder


def load_text(folder: Path, text: str, name: str = "policy.yaml") -> PolicySet:
    """Load one policy written as YAML text."""
    return load_policies(write_policies(folder, {name: text}))


def identity(client: str = "gp-frontdesk", scopes: Iterable[str] = (), subject: str = "dr-1",
             **claims: Any) -> Identity:
    return Identity(issuer="https://idp.test", client=client, subject=subject,
                    scopes=frozenset(scopes), claims={"sub": subject, **claims})


def minimal_policy(client: str = "c1", routes: str | None = None) -> str:
    """A small valid policy; `routes` replaces the routes block (YAML, indented 2)."""
    body = routes or """\
      - name: read
        methods: [GET]
        path: /patients/{id}
        scopes: [patient.read]
    """
    return f"client: {client}\nroutes:\n" + textwrap.indent(textwrap.dedent(body), "  ")
