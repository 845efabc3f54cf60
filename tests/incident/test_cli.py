"""`vigie revoke`, `vigie contain` and `vigie incident timeline` from a shell: what the
operator reads, exit codes, and clear errors for bad input."""

from __future__ import annotations

import orjson

from support.guard_e2e import subject_of
from support.incident import run_cli


def admin_args(s) -> tuple[str, ...]:
    return ("--admin", s.h.admin_url, "--token-file", str(s.token_file), "--operator", "bob")


def test_revoke_list_lift_and_contain_from_the_shell(stacks) -> None:
    s = stacks()
    code, out, err = run_cli("revoke", "client", s.client, "--reason", "INC-10",
                             *admin_args(s))
    assert code == 0, err
    assert out.startswith(f"revoked client {s.client} issued before ")
    assert "by bob (admin token " in out and "reason: INC-10" in out
    assert "lost when it restarts" in err  # no redis, no state file: said plainly
    code, out, err = run_cli("revoke", "list", *admin_args(s))
    assert code == 0 and out.count("revoked client") == 1 and "1 revocations in force" in err
    ident = out.split(": id ")[1].split(",")[0]
    assert s.get("/patients/1").status_code == 401
    code, out, _ = run_cli("revoke", "lift", ident, *admin_args(s))
    assert code == 0 and out.strip() == f"lifted revocation {ident}"
    assert s.get("/patients/1").status_code == 200

    code, out, err = run_cli("contain", "*", "deny", "--reason", "INC-10", "--for", "10m",
                             *admin_args(s))
    assert code == 0, err
    assert out.startswith("contained every client: deny until ")
    assert s.get("/patients/1").status_code == 403
    code, out, _ = run_cli("contain", "lift", "*", *admin_args(s))
    assert code == 0 and s.get("/patients/1").status_code == 200


def test_bad_input_gets_a_clear_error_and_exit_2(stacks, tmp_path) -> None:
    s = stacks()
    cases = [
        (("revoke", "client", "gp-unknown", "--reason", "x"), "no policy names 'gp-unknown'"),
        (("revoke", "client", s.client, "--reason", "x", "--issued-before", "last week"),
         "not an ISO 8601 time"),
        (("contain", s.client, "deny", "--reason", "x", "--until", "2020-01-01T00:00:00Z"),
         "would already be over"),
        (("contain", s.client, "deny", "--reason", "x", "--for", "soon"), "not a duration"),
        (("revoke", "user", s.client, "--reason", "x"), "give the PRINCIPAL"),
        (("revoke", "lift", "rev_000000000000"), "no revocation in force"),
        (("contain", "lift", s.client), "no switch in force"),
    ]
    for argv, words in cases:
        code, _, err = run_cli(*argv, *admin_args(s))
        assert code == 2 and words in err, (argv, err)
    code, _, err = run_cli("revoke", "list", "--admin", "http://127.0.0.1:9",
                           "--token-file", str(s.token_file))
    assert code == 2 and "unreachable" in err and "NOTHING was changed" in err
    code, _, err = run_cli("revoke", "list", "--admin", s.h.admin_url, "--token-file",
                           str(tmp_path / "missing"))
    assert code == 2 and "cannot read the admin token" in err
    code, _, err = run_cli("contain", "--reason", "x")
    assert code == 2


def test_the_timeline_tells_a_principal_story_in_text(stacks) -> None:
    s = stacks()
    for n in range(3):
        assert s.get(f"/patients/{n}", sub="dr-mallory").status_code == 200
    principal = subject_of(s.h, s.client, "dr-mallory")
    assert run_cli("revoke", "user", s.client, principal, "--reason", "INC-11",
                   *admin_args(s))[0] == 0
    assert s.get("/patients/9", sub="dr-mallory").status_code == 401
    audit, events = str(s.h.audit_path), str(s.h.tmp / "events.jsonl")
    code, out, err = run_cli("incident", "timeline", audit, "--events", events,
                             "--principal", principal)
    assert code == 0, err
    assert f"Incident timeline of principal {principal} (client {s.client})" in out
    assert "revocation" in out and "by bob (admin token" in out and "INC-11" in out
    assert "requests           4 (allowed 3, revoked 1)" in out
    assert "patients disclosed 3 distinct" in out
    code, out, _ = run_cli("incident", "timeline", audit, "--principal", principal,
                           "--format", "json", "--since", "2999-01-01")
    assert code == 0 and orjson.loads(out)["first_request"] is None
    code, _, err = run_cli("incident", "timeline", audit, "--principal", principal,
                           "--since", "tuesday")
    assert code == 2 and "--since: not ISO 8601" in err
