"""The register of who sees what (`vigie policy report`), for the data protection officer."""

from __future__ import annotations

from vigie.policy.model import PolicySet


def render(policies: PolicySet, fmt: str, *, title_source: str) -> str:
    raise NotImplementedError
