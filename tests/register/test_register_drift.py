"""docs/register.md and docs/register.html are the register of the example policies, up to date.

`make register` writes them; this test regenerates both and compares, so a policy
change without a new register fails CI (run `make register`).
"""

from __future__ import annotations

import pytest

from cli.conftest import REPO, vigie
from vigie.policy.loader import load_policies
from vigie.register import render


@pytest.mark.parametrize(("fmt", "name"), [("md", "register.md"), ("html", "register.html")])
def test_the_register_in_docs_matches_the_example_policies(fmt: str, name: str) -> None:
    expected = render(load_policies(REPO / "policies"), fmt, title_source="policies")
    committed = (REPO / "docs" / name).read_text(encoding="utf-8")
    assert committed == expected, f"docs/{name} is out of date: run `make register`"


def test_the_cli_writes_what_make_register_commits() -> None:
    result = vigie("policy", "report", "policies", "--format", "md", cwd=REPO)
    assert result.code == 0, result.err
    assert result.out == (REPO / "docs" / "register.md").read_text(encoding="utf-8")


def test_a_folder_with_an_invalid_policy_gives_no_register(tmp_path: pytest.TempPathFactory
                                                           ) -> None:
    folder = tmp_path / "bad"  # type: ignore[operator]
    folder.mkdir()
    (folder / "x.yaml").write_text("client: x\nroutes: []\n")
    result = vigie("policy", "report", folder)
    assert result.code == 1
    assert "x.yaml:2: routes: must be a non-empty list" in result.err
    assert result.out == ""
