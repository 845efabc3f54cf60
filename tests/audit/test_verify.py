"""Tamper detection: every kind of edit is named at the right line."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from support.audit import write_many
from vigie.audit import GENESIS, AuditLog, main_verify, verify
from vigie.audit.log import rotated_files

OpenLog = Callable[..., AuditLog]


@pytest.fixture
def ten_lines(tmp_path: Path, open_log: OpenLog) -> tuple[Path, list[bytes], str]:
    path = tmp_path / "audit.log"
    log = open_log(path)
    write_many(log, 10)
    return path, path.read_bytes().splitlines(keepends=True), log.head


def reseal(raw: bytes, **changes: object) -> bytes:
    """An attacker who edits a line and recomputes its own hash (not the next line's)."""
    record = orjson.loads(raw)
    record.pop("hash")
    record.update(changes)
    canonical = orjson.dumps(record)
    return canonical[:-1] + b',"hash":"' + hashlib.sha256(canonical).hexdigest().encode() + b'"}\n'


def test_intact_log(ten_lines: tuple[Path, list[bytes], str]) -> None:
    path, _, head = ten_lines
    result = verify(path, start=GENESIS, head=head)
    assert result.ok and result.lines == 10 and result.start == GENESIS and result.head == head


@pytest.mark.parametrize(("tamper", "line", "why"), [
    (lambda ls: ls.__setitem__(4, ls[4].replace(b'"status":200', b'"status":403')), 5, "hash"),
    (lambda ls: ls.__setitem__(4, ls[4].replace(b'["4"]', b'["99"]')), 5, "hash"),
    (lambda ls: ls.__setitem__(4, reseal(ls[4], patients=[])), 6, "prev"),
    (lambda ls: ls.__delitem__(4), 5, "prev"),
    (lambda ls: ls.insert(4, ls[2]), 5, "prev"),
    (lambda ls: ls.__setitem__(slice(3, 5), [ls[4], ls[3]]), 4, "prev"),
    (lambda ls: ls.__setitem__(9, ls[9][:-30]), 10, "truncated"),
    (lambda ls: ls.__setitem__(9, ls[9][:-1]), 10, "truncated"),
    (lambda ls: ls.insert(2, b"\n"), 3, "empty"),
    (lambda ls: ls.__setitem__(6, ls[6].replace(b',"hash":"', b',"hush":"')), 7, "seal"),
    (lambda ls: ls.__setitem__(0, reseal(ls[0], prev="1" * 64)), 1, "genesis"),
], ids=["edit-status", "edit-patients", "edit-and-reseal", "delete", "duplicate", "reorder",
        "truncate-mid-line", "truncate-newline", "blank-line", "no-seal", "forged-start"])
def test_tampering_is_named_at_the_right_line(ten_lines: tuple[Path, list[bytes], str],
                                              tamper: Callable[[list[bytes]], None], line: int,
                                              why: str) -> None:
    path, lines, _ = ten_lines
    tamper(lines)
    path.write_bytes(b"".join(lines))
    result = verify(path, start=GENESIS)
    assert not result.ok
    assert (result.file, result.line) == (str(path), line)
    assert result.reason is not None
    assert why in result.reason.lower() or (why == "seal" and "seal" in result.reason)
    assert result.lines == line - 1


def test_lines_cut_from_the_end_need_the_head_anchor(
        ten_lines: tuple[Path, list[bytes], str]) -> None:
    path, lines, head = ten_lines
    path.write_bytes(b"".join(lines[:7]))
    assert verify(path).ok  # undetectable without an anchor kept elsewhere
    result = verify(path, head=head)
    assert not result.ok and result.line == 8 and "missing at the end" in (result.reason or "")


def test_a_deleted_first_line_shows_as_a_non_genesis_start(
        ten_lines: tuple[Path, list[bytes], str]) -> None:
    path, lines, _ = ten_lines
    path.write_bytes(b"".join(lines[1:]))
    result = verify(path)
    assert result.ok and result.start == orjson.loads(lines[0])["hash"]
    assert not verify(path, start=GENESIS).ok


def test_a_missing_rotated_file_breaks_the_chain(tmp_path: Path, open_log: OpenLog) -> None:
    path = tmp_path / "audit.log"
    write_many(open_log(path, rotate_bytes=1500), 20)
    files = rotated_files(path)
    assert len(files) >= 3
    assert verify(files).ok
    result = verify([files[0], *files[2:]])
    assert not result.ok and result.file == str(files[2]) and result.line == 1


def test_an_empty_file_is_intact(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    result = verify(tmp_path / "empty.log")
    assert result.ok and result.lines == 0


def test_cli_verify_exit_codes_and_messages(ten_lines: tuple[Path, list[bytes], str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path, lines, head = ten_lines
    assert main_verify([str(path), "--start", "genesis", "--head", head]) == 0
    assert "OK: 10 lines, chain from genesis" in capsys.readouterr().out
    lines[2] = lines[2].replace(b'"GET"', b'"PUT"')
    path.write_bytes(b"".join(lines))
    assert main_verify([str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:3: hash mismatch")
    assert main_verify([str(path.with_name("missing.log"))]) == 2
    assert "missing.log: cannot read" in capsys.readouterr().err
    assert main_verify([str(path), "--head", "xyz"]) == 2
    assert main_verify([]) == 2
