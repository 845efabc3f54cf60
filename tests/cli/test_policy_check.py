"""`vigie policy check DIR`: exit 0 when valid; else exit 1, one `FILE:LINE: message` per error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.conftest import REPO, vigie

LINE = re.compile(r"^(?P<file>[^:]+\.yaml):(?P<line>\d+): (?P<message>.+)$")

VALID = """\
client: {client}
routes:
  - name: read
    methods: [GET]
    path: /patients/{{id}}
    scopes: [patient.read]
    response:
      records: "$"
      fields:
        id: keep
        nir: {{mask: last2}}
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("folder", ["policies", "src/vigie/demo/policies"])
def test_shipped_policies_are_valid(folder: str) -> None:
    result = vigie("policy", "check", REPO / folder)
    assert result.code == 0, result.out + result.err
    assert not any(LINE.match(line) for line in result.lines)


def errors(result_lines: list[str]) -> list[tuple[str, int, str]]:
    parsed = []
    for line in result_lines:
        match = LINE.match(line)
        assert match, f"not FILE:LINE: message: {line!r}"
        parsed.append((Path(match["file"]).name, int(match["line"]), match["message"]))
    return parsed


BROKEN = {
    "unknown key": ("""\
client: a
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    scopes: [r]
    colour: blue
""", 7, "unknown key"),
    "bad selector": ("""\
client: a
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$"
      fields:
        id: keep
        "address..postcode": keep
""", 10, ""),
    "bad records location": ("""\
client: a
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$.items[?x=1"
      fields: {id: keep}
""", 7, ""),
    "unknown action": ("""\
client: a
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$"
      fields:
        id: keep
        nir: encrypt
""", 10, "unknown action"),
    "unknown mask": ("""\
client: a
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$"
      fields:
        nir: {mask: first3}
""", 9, "unknown mask"),
    "unreachable route": ("""\
client: a
routes:
  - name: any-patient
    methods: [GET]
    path: /patients/{id}
  - name: patient-42
    methods: [GET]
    path: /patients/{id}
""", 6, "unreachable"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_kind_of_error(tmp_path: Path, case: str) -> None:
    text, line, words = BROKEN[case]
    folder = write(tmp_path / "p", {"ok.yaml": VALID.format(client="ok"), "bad.yaml": text})
    result = vigie("policy", "check", folder)
    assert result.code == 1, result.out
    found = errors(result.lines)
    assert found, result.out
    assert all(name == "bad.yaml" for name, _, _ in found)
    assert (line, True) in [(n, words.lower() in m.lower()) for _, n, m in found], found


def test_duplicate_clients(tmp_path: Path) -> None:
    folder = write(tmp_path / "p", {"a.yaml": VALID.format(client="same"),
                                    "b.yaml": "# the same client again\n"
                                              + VALID.format(client="same")})
    result = vigie("policy", "check", folder)
    assert result.code == 1
    found = errors(result.lines)
    assert len(found) == 1
    name, line, message = found[0]
    assert name == "b.yaml" and line == 2 and "same" in message and "a.yaml" in message


def test_every_error_of_several_files_is_listed(tmp_path: Path) -> None:
    files = {f"bad{i}.yaml": BROKEN[case][0] .replace("client: a", f"client: c{i}")
             for i, case in enumerate(sorted(BROKEN))}
    result = vigie("policy", "check", write(tmp_path / "p", files))
    assert result.code == 1
    assert {name for name, _, _ in errors(result.lines)} == set(files)


def test_test_files_and_underscore_files_are_not_policies(tmp_path: Path) -> None:
    folder = write(tmp_path / "p", {"ok.yaml": VALID.format(client="ok"),
                                    "ok.test.yaml": "client: ok\ncases: []\n",
                                    "_shared.yaml": "anything: [unparsed\n"})
    assert vigie("policy", "check", folder).code == 0


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    folder = write(tmp_path / "p", {"bad.yaml": "client: a\nroutes:\n  - name: [unclosed\n"})
    result = vigie("policy", "check", folder)
    assert result.code == 1
    assert errors(result.lines)[0][0] == "bad.yaml"
