"""`audit exposed` for a notification: by principal across clients and replicas' files,
the form of each disclosed field, CSV and JSON lines, and progress on large inputs."""

from __future__ import annotations

import contextlib
import csv
import io
import random
from collections.abc import Callable
from pathlib import Path

import orjson

from support.audit import BASE_TIME, make_decision
from vigie.audit import AuditLog, exposed, main_exposed
from vigie.audit.exposed import exposed_fields

OpenLog = Callable[..., AuditLog]
FORMS = {"read": {"id": "clear", "nir": "masked", "birth_date": "generalized"},
         "minimal": {"id": "clear", "last_name": "pseudonym"}}


def two_replicas(tmp_path: Path, open_log: OpenLog, seed: int = 3) -> tuple[list[Path], dict]:
    """Two replicas' logs; the expected {patient: {field: forms}} of principal psn-m."""
    rng = random.Random(seed)
    expected: dict[str, dict[str, set[str]]] = {}
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for replica, path in enumerate(files):
        log = open_log(path)
        for index in range(300):
            principal = rng.choice(["psn-m", "psn-m", "psn-other"])
            client = rng.choice(["gp", "lab"])
            status = rng.choice([200, 200, 403, 429])
            forms = FORMS[rng.choice(["read", "minimal"])]
            refs = [str(rng.randrange(100)) for _ in range(rng.choice([0, 1, 3]))]
            decision = make_decision(request_id=f"r{replica}-{index}", client=client,
                                     status=status, patients=refs, forms=forms,
                                     wall_time=BASE_TIME + index)
            log.record(decision, principal)
            if principal == "psn-m" and status == 200:
                for ref in refs:
                    into = expected.setdefault(ref, {})
                    for name, form in forms.items():
                        into.setdefault(name, set()).add(form)
        log.close()
    return files, expected


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main_exposed(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_a_principal_across_clients_and_replicas_is_deduplicated(tmp_path, open_log) -> None:
    files, expected = two_replicas(tmp_path, open_log)
    assert list(exposed(files, None, user="psn-m")) == sorted(expected, key=int)
    found = dict(exposed_fields(files, None, user="psn-m"))
    assert found == expected
    gp_only = set(exposed(files, "gp", user="psn-m"))
    assert gp_only < set(expected)
    # Pieces scanned in parallel, with progress, give the same answer.
    seen: list[tuple[int, int]] = []
    parallel = dict(exposed_fields(files, None, user="psn-m", workers=2, parallel_threshold=1,
                                   progress=lambda done, total: seen.append((done, total))))
    assert parallel == expected
    assert seen and seen[-1][0] == seen[-1][1] == sum(f.stat().st_size for f in files)


def test_the_cli_writes_csv_and_json_lines_with_fields(tmp_path, open_log) -> None:
    files, expected = two_replicas(tmp_path, open_log)
    code, out, err = run(*map(str, files), "--principal", "psn-m", "--fields",
                         "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["patient"] for row in rows] == sorted(expected, key=int)
    for row in rows:
        fields = expected[row["patient"]]
        for form in ("clear", "masked", "pseudonym", "generalized"):
            named = sorted(name for name, forms in fields.items() if form in forms)
            assert row[form] == ";".join(named)
    assert f"{len(expected)} distinct patients disclosed to principal psn-m" in err

    code, out, _ = run(*map(str, files), "--principal", "psn-m", "--fields", "--format",
                       "jsonl")
    records = [orjson.loads(line) for line in out.splitlines()]
    assert {r["patient"]: {k: set(v) for k, v in r["fields"].items()} for r in records} \
        == expected
    code, out, _ = run(*map(str, files), "--client", "gp", "--format", "jsonl")
    assert all(set(orjson.loads(line)) == {"patient"} for line in out.splitlines())


def test_progress_is_shown_on_request_and_usage_errors_are_clear(tmp_path, open_log) -> None:
    files, _ = two_replicas(tmp_path, open_log)
    code, out, err = run(*map(str, files), "--principal", "psn-m", "--progress")
    assert code == 0 and "scanning [" in err and "100%" in err
    code, _, err = run(*map(str, files), "--principal", "psn-m")
    assert "scanning" not in err  # stderr is not a terminal here
    code, _, err = run(str(files[0]))
    assert code == 2 and "give --client, --principal or both" in err


def test_lines_written_before_forms_existed_count_their_fields_as_clear(tmp_path,
                                                                        open_log) -> None:
    path = tmp_path / "old.jsonl"
    log = open_log(path)
    log.record(make_decision(patients=["7"], fields={"id", "last_name"}), "psn-m")
    log.close()
    raw = orjson.loads(path.read_bytes())
    assert raw["forms"] is None
    assert dict(exposed_fields([path], None, user="psn-m")) == {
        "7": {"id": {"clear"}, "last_name": {"clear"}}}
