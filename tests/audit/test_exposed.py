"""`exposed` against a naive oracle that parses every line, with adversarial values."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from support.audit import BASE_TIME, make_decision
from vigie.audit import AuditLog, exposed, main_exposed
from vigie.audit.log import rotated_files

OpenLog = Callable[..., AuditLog]

CLIENTS = ["gp", "gp-frontdesk", "billing", 'odd "client",', "lab\u00e9"]
USERS = ["psn-a", "psn-b", "psn-c"]
TRICKY_REFS = ['"client":"gp",', '],"fields":[', '"status":200', "psn-x", "\u00e9\u00e8", "7", "42"]


def oracle(files: list[Path], client: str, since: str | None, until: str | None,
           user: str | None) -> set[str]:
    refs: set[str] = set()
    for path in files:
        for raw in path.read_bytes().splitlines():
            line = orjson.loads(raw)
            if line["client"] != client or not 200 <= line["status"] < 300:
                continue
            if (since and line["ts"] < since) or (until and line["ts"] > until):
                continue
            if user and line["principal"] != user:
                continue
            refs.update(line["patients"])
    return refs


def random_log(path: Path, open_log: OpenLog, lines: int, seed: int,
               rotate_bytes: int = 0) -> list[Path]:
    rng = random.Random(seed)
    log = open_log(path, rotate_bytes=rotate_bytes)
    for index in range(lines):
        refs = [rng.choice(TRICKY_REFS) if rng.random() < 0.1 else str(rng.randrange(500))
                for _ in range(rng.choice([0, 1, 1, 1, 3, 20]))]
        log.record(make_decision(
            request_id=f"r{index}", client=rng.choice(CLIENTS), patients=refs,
            status=rng.choice([200, 200, 200, 206, 403, 404, 429, 502]),
            wall_time=BASE_TIME + index * 37.5 + rng.random(),
        ), rng.choice(USERS))
    log.close()
    return [*rotated_files(path), path]


WINDOWS = [
    (None, None),
    ("2026-11-28T10:30:00.000Z", None),
    (None, "2026-11-28T11:00:00.000Z"),
    ("2026-11-28T10:20:00.500Z", "2026-11-28T10:40:00.000Z"),
    ("2027-01-01T00:00:00.000Z", None),
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_matches_the_oracle(tmp_path: Path, open_log: OpenLog, client: str,
                            since: str | None, until: str | None) -> None:
    files = random_log(tmp_path / "audit.log", open_log, 300, seed=len(client))
    for user in (None, "psn-b"):
        expected = oracle(files, client, since, until, user)
        assert set(exposed(files, client, since, until, user)) == expected
    assert oracle(files, client, None, None, None)  # the data exercises this client


def test_parallel_split_gives_the_same_answer(tmp_path: Path, open_log: OpenLog) -> None:
    files = random_log(tmp_path / "audit.log", open_log, 1500, seed=7, rotate_bytes=150_000)
    assert len(files) >= 3
    for client in CLIENTS[:3]:
        single = list(exposed(files, client))
        parallel = list(exposed(files, client, workers=2, parallel_threshold=0))
        assert parallel == single
        assert set(single) == oracle(files, client, None, None, None)


def test_window_bounds_are_inclusive_and_dates_cover_whole_days(tmp_path: Path,
                                                               open_log: OpenLog) -> None:
    log = open_log(tmp_path / "audit.log")
    moments = {"before": "2026-11-27T23:59:59.999", "first": "2026-11-28T00:00:00.000",
               "last": "2026-11-28T23:59:59.999", "after": "2026-11-29T00:00:00.000"}
    for ref, moment in moments.items():
        wall = datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp() + 0.0001
        log.record(make_decision(client="gp", patients=[ref], wall_time=wall), "psn-a")
    path = tmp_path / "audit.log"
    assert set(exposed(path, "gp", "2026-11-28", "2026-11-28")) == {"first", "last"}
    assert set(exposed(path, "gp", "2026-11-28T00:00:00Z", "2026-11-28T23:59:59.999Z")) == {
        "first", "last"}
    # Offsets are converted to UTC: 01:00+01:00 is midnight UTC.
    assert set(exposed(path, "gp", "2026-11-28T01:00:00+01:00")) == {"first", "last", "after"}


def test_only_disclosures_count(tmp_path: Path, open_log: OpenLog) -> None:
    log = open_log(tmp_path / "audit.log")
    for status, ref in ((200, "a"), (204, "b"), (304, "c"), (403, "d"), (429, "e"), (502, "f")):
        log.record(make_decision(client="gp", status=status, patients=[ref]), "psn-a")
    log.record(make_decision(client="gp-frontdesk", patients=["g"]), "psn-a")
    assert list(exposed(tmp_path / "audit.log", "gp")) == ["a", "b"]


def test_cli_lists_refs_then_a_count(tmp_path: Path, open_log: OpenLog,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    log = open_log(tmp_path / "audit.log")
    for refs, user in ((["10", "9"], "psn-a"), (["9", "psn-q"], "psn-b"), (["100"], "psn-a")):
        log.record(make_decision(client="gp", patients=refs), user)
    path = str(tmp_path / "audit.log")
    assert main_exposed([path, "--client", "gp"]) == 0
    assert capsys.readouterr().out.splitlines() == ["9", "10", "100", "psn-q", "4 patients"]
    assert main_exposed([path, "--client", "gp", "--user", "psn-b", "--since", "2026-11-28",
                         "--until", "2026-11-28T12:00:00+01:00"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["9", "psn-q", "2 patients"]
    assert "until 2026-11-28T11:00:00.000Z" in captured.err
    assert main_exposed([path, "--client", "nobody"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 patients"]
    assert main_exposed([path, "--client", "gp", "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main_exposed([path]) == 2
    assert main_exposed([str(tmp_path / "none.log"), "--client", "gp"]) == 2
