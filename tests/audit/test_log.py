"""The writer: line format, chain, rotation, resume, failure modes, what never appears."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from support.audit import BASE_TIME, make_decision, read_lines, write_many
from vigie.audit import GENESIS, LINE_KEYS, AuditLog, verify
from vigie.audit.log import rotated_files
from vigie.config import AuditSettings
from vigie.errors import AuditUnavailable
from vigie.policy.model import Mode
from vigie.telemetry.metrics import Metrics

OpenLog = Callable[..., AuditLog]
NIR = "185057800608491"


def failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("vigie_audit_write_failures_total")
    return value or 0.0


def test_line_has_the_documented_keys_in_order(tmp_path: Path, open_log: OpenLog) -> None:
    log = open_log(tmp_path / "audit.log")
    log.record(make_decision(wall_time=BASE_TIME + 0.1234, fields={"last_name", "id", "birth"}),
               "psn-abc")
    raw = (tmp_path / "audit.log").read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    line = orjson.loads(raw)
    assert tuple(line) == LINE_KEYS
    assert line["ts"] == "2026-11-28T10:00:00.123Z"
    assert line["principal"] == "psn-abc"
    assert line["fields"] == ["birth", "id", "last_name"]
    assert line["masked"] == 3
    assert line["patients"] == ["42"]
    assert line["mode"] == "enforce"
    assert line["prev"] == GENESIS


def test_hash_is_sha256_of_the_line_without_its_hash_member(tmp_path: Path,
                                                             open_log: OpenLog) -> None:
    """The documented recipe, done independently of the writer's code."""
    log = open_log(tmp_path / "audit.log")
    for index in range(3):
        log.record(make_decision(request_id=f"r{index}"), "psn-abc")
    previous = GENESIS
    for raw in (tmp_path / "audit.log").read_bytes().splitlines():
        record = orjson.loads(raw)
        without_hash = {k: v for k, v in record.items() if k != "hash"}
        assert hashlib.sha256(orjson.dumps(without_hash)).hexdigest() == record["hash"]
        cut = raw.rindex(b',"hash":"')
        assert hashlib.sha256(raw[:cut] + b"}").hexdigest() == record["hash"]
        assert record["prev"] == previous
        previous = record["hash"]
    assert log.head == previous


def test_no_nir_name_token_or_body_reaches_a_line(tmp_path: Path, open_log: OpenLog) -> None:
    log = open_log(tmp_path / "audit.log")
    decision = make_decision(subject=f"Jean Dupont {NIR}", reason="scope",
                             would_block="throttled", mode=Mode.REPORT_ONLY, withheld=2)
    decision.auth_failure = "expired"
    log.record(decision, "psn-pseudonymous")
    raw = (tmp_path / "audit.log").read_text()
    assert NIR not in raw and "Dupont" not in raw and "dr.house" not in raw
    (line,) = read_lines(tmp_path / "audit.log")
    assert set(line) == set(LINE_KEYS)
    assert line["mode"] == "report-only" and line["would_block"] == "throttled"
    assert line["withheld"] == 2 and line["reason"] == "scope"


def test_rotation_keeps_one_chain_across_files(tmp_path: Path, open_log: OpenLog) -> None:
    path = tmp_path / "audit.log"
    log = open_log(path, rotate_bytes=2000)
    write_many(log, 40)
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    for old in rotated:
        assert old.stat().st_size >= 2000
    assert path.exists()  # a new live file is opened at once
    files = [*rotated, path]
    assert sum(len(read_lines(f)) for f in files) == 40
    non_empty = [f for f in files if f.stat().st_size]
    for older, newer in zip(non_empty, non_empty[1:], strict=False):
        assert read_lines(newer)[0]["prev"] == read_lines(older)[-1]["hash"]
    result = verify(files, start=GENESIS, head=log.head)
    assert result.ok and result.lines == 40
    # One file alone starts from a non-genesis prev, reported so its predecessor can be found.
    alone = verify(files[1])
    assert alone.ok and alone.start == read_lines(files[0])[-1]["hash"]


def test_restart_resumes_the_chain(tmp_path: Path, metrics: Metrics) -> None:
    path = tmp_path / "audit.log"
    first = AuditLog(_settings(path), metrics)
    write_many(first, 3)
    head = first.head
    first.close()
    second = AuditLog(_settings(path), metrics)
    write_many(second, 2)
    second.close()
    lines = read_lines(path)
    assert lines[3]["prev"] == head
    assert verify(path, start=GENESIS).ok


def test_restart_after_rotation_resumes_from_the_newest_rotated_file(
        tmp_path: Path, metrics: Metrics) -> None:
    path = tmp_path / "audit.log"
    first = AuditLog(_settings(path, rotate_bytes=1), metrics)  # rotate after every line
    write_many(first, 3)
    first.close()
    assert path.stat().st_size == 0 and len(rotated_files(path)) == 3
    second = AuditLog(_settings(path), metrics)
    write_many(second, 1)
    second.close()
    assert verify([*rotated_files(path), path], start=GENESIS).ok


def test_restart_after_a_torn_write_starts_on_a_new_line(tmp_path: Path,
                                                         metrics: Metrics) -> None:
    path = tmp_path / "audit.log"
    first = AuditLog(_settings(path), metrics)
    write_many(first, 2)
    first.close()
    with path.open("ab") as handle:
        handle.write(b'{"ts":"2026-11-28T09:00:00.000Z","request_id":"torn')  # crash mid-line
    second = AuditLog(_settings(path), metrics)
    write_many(second, 1)
    second.close()
    raw = path.read_bytes().splitlines()
    assert len(raw) == 4 and raw[2].endswith(b'"torn')
    assert orjson.loads(raw[3])["prev"] == orjson.loads(raw[1])["hash"]
    result = verify(path)
    assert not result.ok and result.line == 3  # the torn line is named, nothing is hidden


def test_fail_closed_refuses_when_the_file_cannot_be_written(tmp_path: Path,
                                                              metrics: Metrics) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    log = AuditLog(_settings(blocker / "audit.log"), metrics)
    with pytest.raises(AuditUnavailable) as caught:
        log.record(make_decision(), "psn-abc")
    assert caught.value.status == 503
    assert failures(metrics) == 1


def test_fail_closed_on_a_full_disk(metrics: Metrics) -> None:
    log = AuditLog(_settings(Path("/dev/full")), metrics)
    with pytest.raises(AuditUnavailable):
        log.record(make_decision(), "psn-abc")
    assert log.head == GENESIS  # the chain did not advance over an unwritten line
    log.close()


def test_fail_open_serves_counts_and_logs(tmp_path: Path, metrics: Metrics,
                                          caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(_settings(Path("/dev/full"), on_failure="open"), metrics)
    with caplog.at_level(logging.ERROR, logger="vigie.audit"):
        log.record(make_decision(), "psn-abc")
        log.record(make_decision(), "psn-abc")
    assert failures(metrics) == 2
    assert any("fail-open" in message for message in caplog.messages)
    log.close()


def test_writes_resume_when_the_location_becomes_writable(tmp_path: Path,
                                                          metrics: Metrics) -> None:
    folder = tmp_path / "later"
    log = AuditLog(_settings(folder / "audit.log"), metrics)
    with pytest.raises(AuditUnavailable):
        log.record(make_decision(), "psn-abc")
    folder.mkdir()
    log.record(make_decision(), "psn-abc")
    log.close()
    assert verify(folder / "audit.log", start=GENESIS).ok


def test_stdout_sink(capsysbinary: pytest.CaptureFixture[bytes], metrics: Metrics) -> None:
    log = AuditLog(_settings(Path("-")), metrics)
    log.record(make_decision(request_id="a"), "psn-abc")
    log.record(make_decision(request_id="b"), "psn-abc")
    out = capsysbinary.readouterr().out.splitlines()
    assert [orjson.loads(line)["request_id"] for line in out] == ["a", "b"]
    assert orjson.loads(out[1])["prev"] == orjson.loads(out[0])["hash"]


def test_record_is_safe_from_several_threads(tmp_path: Path, open_log: OpenLog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "audit.log"
    log = open_log(path, rotate_bytes=20_000)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in pool.map(lambda i: write_many(log, 50, BASE_TIME + i), range(8)):
            pass
    files = [*rotated_files(path), path]
    result = verify(files, start=GENESIS, head=log.head)
    assert result.ok and result.lines == 400


def _settings(path: Path, *, rotate_bytes: int = 0, on_failure: str = "closed") -> AuditSettings:
    return AuditSettings(path=str(path), rotate_bytes=rotate_bytes, on_failure=on_failure)


def test_a_closed_stdout_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch,
                                                 metrics: Metrics) -> None:
    import io

    closed = io.TextIOWrapper(io.BytesIO())
    closed.close()
    monkeypatch.setattr("sys.stdout", closed)
    log = AuditLog(_settings(Path("-")), metrics)
    with pytest.raises(AuditUnavailable):
        log.record(make_decision(), "psn-abc")
    assert failures(metrics) == 1


def test_rotations_are_named_in_order_across_a_second(tmp_path: Path, open_log: OpenLog,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock is read once per name: a second and its microseconds from two readings
    # named the rotation at 12:00:00.999999 + 2 µs "...T120000.000001Z", before the earlier
    # ones, and the rotated set no longer verified.
    import vigie.audit.log as audit_log

    clock = iter([1_796_000_000.999_999 + n * 0.000_001 for n in range(1000)])
    monkeypatch.setattr(audit_log.time, "time", lambda: next(clock))
    path = tmp_path / "audit.log"
    log = open_log(path, rotate_bytes=600)
    write_many(log, 6, BASE_TIME)
    files = [*rotated_files(path), path]
    assert len(files) > 2
    assert verify(files, start=GENESIS, head=log.head).ok
