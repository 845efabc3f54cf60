"""The register of who sees what (`vigie policy report`), for the data protection officer.

`build` turns the policies into the register's content; `markdown` and `html`
render it (HTML: one self-contained page, no external assets, no script).
"""

from __future__ import annotations

from vigie.policy.model import PolicySet
from vigie.register.build import build_register
from vigie.register.html import render_html
from vigie.register.markdown import render_markdown


def render(policies: PolicySet, fmt: str, *, title_source: str) -> str:
    register = build_register(policies)
    if fmt == "html":
        return render_html(register, title_source)
    return render_markdown(register, title_source)
