"""The usage log: bounded shapes of report-only traffic, never a value.

The recorder is driven directly with the proxy's own objects (Grant, Decision,
OutgoingResponse); the end-to-end test (test_suggest_e2e.py) goes through the proxy.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.soc import NIR_STYLES, Traffic, format_nir, leaks, synthetic_nir
from vigie.context import Decision, Grant, Identity
from vigie.learn import usage as usage_module
from vigie.learn.shapes import field_paths, path_shape, query_shape, records_location
from vigie.learn.usage import UsageRecorder
from vigie.messages import OutgoingResponse
from vigie.policy.model import ClientPolicy, Mode, Route
from vigie.proxy import UNMATCHED

HEAD = "cd" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recorder(tmp_path: Path, clock: Clock | None = None) -> tuple[UsageRecorder, Path]:
    path = tmp_path / "usage.jsonl"
    return UsageRecorder(str(path), lambda: HEAD, flush_seconds=60,
                         clock=clock or Clock()), path


def see(rec: UsageRecorder, path: str, body: Any = None, *, query: str = "",
        mode: Mode = Mode.REPORT_ONLY, client: str = "pilot", method: str = "GET",
        headers: list[tuple[str, str]] | None = None, raw: bytes | None = None,
        scopes: tuple[str, ...] = ("patient.read",), subject: str = "s") -> None:
    route = Route(name=UNMATCHED, methods=frozenset(), path=path, segments=(), params=())
    grant = Grant(policy=ClientPolicy(client=client, routes=()), route=route, path=path,
                  query=query, params={}, mode=mode)
    decision = Decision(request_id="r", method=method, client=client)
    payload = raw if raw is not None else orjson.dumps(body)
    identity = Identity(issuer="i", client=client, subject=subject, claims={},
                        scopes=frozenset(scopes))
    rec.observe(identity, grant, decision, OutgoingResponse(
        200, headers or [("content-type", "application/json")], payload))


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_one_line_per_client_per_flush_with_the_shapes(tmp_path: Path) -> None:
    clock = Clock()
    rec, path = recorder(tmp_path, clock)
    see(rec, "/patients/42", {"id": 42, "last_name": "Martin", "nir": "185057800608491"})
    see(rec, "/patients/43", {"id": 43, "address": {"postcode": "75012"}})
    see(rec, "/patients", {"items": [{"id": 1, "first_name": "Léa"}], "total": 1},
        query="last_name=Martin&page_size=20")
    see(rec, "/patients", {"items": []}, query="page_size=50")
    see(rec, "/patients/7", {"id": 7}, client="other")
    assert not path.exists()  # nothing before the flush interval
    clock.now = 61
    see(rec, "/patients/44", {"id": 44})
    written = lines(path)
    assert [line["client"] for line in written] == ["other", "pilot"]
    assert all(line["audit_head"] == HEAD and line["kind"] == "vigie-usage/v1"
               and line["issuers"] == ["i"] for line in written)
    shapes = {s["path"]: s for s in written[1]["shapes"]}
    assert shapes["/patients/{}"]["requests"] == 3
    assert shapes["/patients/{}"]["fields"] == ["address.postcode", "id", "last_name", "nir"]
    assert shapes["/patients"]["query"] == ["last_name", "page_size"]
    assert shapes["/patients"]["page_max"] == {"page_size": 50}
    assert shapes["/patients"]["records"] == "$.items[*]"
    assert shapes["/patients"]["fields"] == ["first_name", "id"]
    text = path.read_text()
    for value in ("Martin", "185057800608491", "75012", "Léa", "/42", "/43", "=20"):
        assert value not in text
    rec.close()
    assert len(lines(path)) == 2  # the flush emptied the counters: nothing new to write


def test_only_report_only_requests_are_observed(tmp_path: Path) -> None:
    rec, path = recorder(tmp_path)
    see(rec, "/patients/42", {"id": 42}, mode=Mode.ENFORCE)
    rec.close()
    assert not path.exists()


def test_a_compressed_body_is_read_and_a_stream_only_counted(tmp_path: Path) -> None:
    rec, path = recorder(tmp_path)
    see(rec, "/a", raw=gzip.compress(b'{"id": 1, "sex": "F"}'),
        headers=[("content-type", "application/json"), ("content-encoding", "gzip")])
    see(rec, "/b", raw=b'{"id": 1}\n{"id": 2, "notes": "x"}\n',
        headers=[("content-type", "application/x-ndjson")])
    see(rec, "/c", raw=b"not json", headers=[("content-type", "application/json")])
    see(rec, "/c", raw=b'{"a": "' + b"x" * (5 << 20) + b'"}')  # too large: counted only
    see(rec, "/c", raw=gzip.compress(b'{"a": "' + b"x" * (5 << 20) + b'"}'),
        headers=[("content-type", "application/json"), ("content-encoding", "gzip")])
    see(rec, "/c", raw=b"\x1f\x8b broken", headers=[("content-encoding", "gzip")])
    rec.close()
    shapes = {s["path"]: s for s in lines(path)[0]["shapes"]}
    assert shapes["/a"]["fields"] == ["id", "sex"]
    assert shapes["/b"]["fields"] == ["id", "notes"] and shapes["/b"]["media"] == "ndjson"
    assert shapes["/c"]["fields"] == [] and shapes["/c"]["requests"] == 4


def test_words_that_vary_too_much_at_one_position_become_a_parameter(tmp_path: Path) -> None:
    rec, path = recorder(tmp_path)
    for name in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                 "india", "juliet"):
        for subject in ("u1", "u2", "u3"):  # three principals: the words are admitted
            see(rec, f"/patients/by-name/{name}", {"id": 1}, subject=subject)
    rec.close()
    paths = [s["path"] for s in lines(path)[0]["shapes"]]
    assert "/patients/by-name/{}" in paths
    assert "/patients/by-name/juliet" not in paths and "/patients/by-name/india" not in paths
    assert len(paths) == usage_module.MAX_WORDS_PER_POSITION + 1


def test_memory_is_capped_and_what_does_not_fit_is_counted(tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    monkeypatch.setattr(usage_module, "MAX_SHAPES", 3)
    monkeypatch.setattr(usage_module, "MAX_CLIENTS", 1)
    rec, path = recorder(tmp_path)
    for word in ("a", "b", "c", "d", "e"):
        see(rec, f"/{word}", {"id": 1})
    see(rec, "/a", {"id": 1}, client="second")
    rec.close()
    (line,) = lines(path)
    assert len(line["shapes"]) == 3 and line["dropped"] == 2
    assert rec.dropped_clients == 1


def test_path_shapes() -> None:
    assert path_shape("/patients/42") == ("patients", "{}")
    assert path_shape("/fhir/Patient/abc-12") == ("fhir", "Patient", "{}")
    assert path_shape("/export.ndjson") == ("export.ndjson",)
    assert path_shape("/v2/patients/185057800608491") == ("v2", "patients", "{}")
    assert path_shape("/patients/0f8fad5b-d9cb-469f-a165-70867728950e") == ("patients", "{}")
    assert path_shape("/") == ("",)


def test_query_shapes_keep_names_and_page_sizes_only() -> None:
    names, sizes = query_shape("last_name=Martin&page_size=20&_count=5&limit=x&185057800608491=1")
    assert names == ["last_name", "page_size", "_count", "limit"]
    assert sizes == {"page_size": 20, "_count": 5}


def test_records_location_and_fhir_identifier_systems() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"identifier": [
        {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "185057800608491"},
        {"system": "Martin", "value": "x"}]}}]}
    location, records = records_location(bundle)
    assert location == "$.entry[*].resource"
    assert field_paths(records) == {"identifier[?system=urn:oid:1.2.250.1.213.1.4.8].system",
                                    "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value",
                                    "identifier[*].system", "identifier[*].value"}
    assert records_location([{"id": 1}])[0] == "$[*]"
    assert field_paths([{"by_id": {"185057800608491": 1, "2024": 2, "ok": 3}}]) == {"by_id.ok"}


_VALUE = st.text(alphabet="abcdefghij_ 0123456789:/.", min_size=1, max_size=20)
_KEY = st.text(alphabet="abcdefghij_0123456789", min_size=1, max_size=8)
_JSON = st.recursive(_VALUE | st.integers(0, 10**15),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_KEY | st.just("system"), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_field_paths_are_made_of_keys_only(body: Any) -> None:
    """Whatever the values, a field path is keys joined by '.' and '[*]': never a value."""
    _, records = records_location(body)
    keys = set(_keys(body))
    for path in field_paths(records):
        assert "?" not in path  # no generated value is a code system URI
        for part in path.replace("[*]", "").split("."):
            assert part in keys


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(k for child in value.values() for k in _keys(child))]
    if isinstance(value, list):
        return [k for child in value for k in _keys(child)]
    return []


def test_the_usage_log_is_configured_under_audit(tmp_path: Path) -> None:
    from vigie.config import load_settings
    from vigie.errors import ConfigError

    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://127.0.0.1:1\naudit: {path: a.jsonl, usage_path: u.jsonl}\n")
    assert load_settings(config, {}).audit.usage_path == str(tmp_path / "u.jsonl")
    assert load_settings(config, {"VIGIE_AUDIT__USAGE_PATH": "/var/u"}).audit.usage_path \
        == "/var/u"
    config.write_text("upstream: http://127.0.0.1:1\naudit: {usage_path: [x]}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, {})
    assert raised.value.key == "audit.usage_path" and raised.value.line == 2
    config.write_text("upstream: http://127.0.0.1:1\n")
    assert load_settings(config, {}).audit.usage_path is None
    assert load_settings(config, {}).audit.usage_min_principals == 3
    assert load_settings(config, {"VIGIE_AUDIT__USAGE_MIN_PRINCIPALS": "5"}) \
        .audit.usage_min_principals == 5
    config.write_text("upstream: http://127.0.0.1:1\naudit: {usage_min_principals: 0}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, {})
    assert raised.value.key == "audit.usage_min_principals"


def test_only_the_first_bodies_of_a_shape_are_read_but_every_request_counts(
        tmp_path: Path) -> None:
    rec, path = recorder(tmp_path)
    for n in range(usage_module.MAX_BODIES_READ + 5):
        see(rec, f"/patients/{n}", {"id": n, f"field_{chr(97 + n % 26)}{n // 26}": 1})
    rec.close()
    (shape,) = lines(path)[0]["shapes"]
    assert shape["requests"] == usage_module.MAX_BODIES_READ + 5
    assert len(shape["fields"]) == usage_module.MAX_BODIES_READ + 1  # id + one per body read


def test_the_scopes_every_token_carried_are_kept_if_they_read_as_names(tmp_path: Path) -> None:
    rec, path = recorder(tmp_path)
    see(rec, "/patients/1", {"id": 1}, scopes=("patient.read", "openid", "user-48213"))
    see(rec, "/patients/2", {"id": 2}, scopes=("patient.read", "profile", "nir:185057800608491"))
    see(rec, "/search", {"id": 2}, scopes=("patient/Patient.read", "ctx:12345678"))
    rec.close()
    shapes = {s["path"]: s for s in lines(path)[0]["shapes"]}
    assert shapes["/patients/{}"]["scopes"] == ["patient.read"]
    assert shapes["/search"]["scopes"] == ["patient/Patient.read"]


def test_no_nir_name_or_token_reaches_the_usage_log(tmp_path: Path) -> None:
    """Values where a careless recorder would copy them: NIRs in every format in paths,
    query names and values, JSON keys, values and identifier systems; names and a token
    in query values and bodies; names as path words, query names and JSON keys."""
    rec, path = recorder(tmp_path)
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJxIn0.c2ln"
    traffic = Traffic(names={"Quennec", "Morvandiau"}, tokens={token})
    for index, style in enumerate(NIR_STYLES):
        value = format_nir(synthetic_nir(index), style)
        compact = value.replace(" ", "").replace(".", "").replace("-", "")
        see(rec, f"/patients/{value}", {
            "id": 7, "nir": value, "last_name": "Quennec", compact: {"name": "Morvandiau"},
            f"n{compact}": 1, "identifier": [
                {"system": f"urn:oid:{value}", "value": value},
                {"system": f"urn:oid:1.2.250.{compact}", "value": value},
                {"system": f"https://ids.example/{compact}", "value": "x"}],
        }, query=f"nir={value}&n{compact}=1&{value}=1&q=Quennec&access_token={token}")
        see(rec, f"/letters/{compact}/nir{compact}", [{"text": f"Mme Morvandiau {value}"}])
    for client in ("pilot", "other"):  # one principal, under two client names: still one
        see(rec, "/patients/by-name/Quennec", {"Morvandiau": 1, "by_name": {"QUENNEC": 2}},
            query="Quennec=1&Morvandiau_Jeanne=2&page_size=5", client=client)
        see(rec, "/Morvandiau", {"items": [{"quennec-morvandiau": 1}]}, client=client)
    rec.flush()
    text = path.read_text(encoding="utf-8")
    assert "patients" in text and "last_name" in text  # the shapes were written
    assert leaks(text, traffic) == []
    assert "quennec" not in text.lower() and "morvandiau" not in text.lower()
    named = {s["path"]: s for s in lines(path)[1]["shapes"]}["/patients/by-name/{}"]
    assert named["query"] == ["page_size", "{}"] and named["page_max"] == {"page_size": 5}
    assert named["fields"] == ["by_name.{}", "{}"]


def test_a_word_sent_by_min_principals_principals_is_written(tmp_path: Path) -> None:
    """A word neither vocabulary nor in the policy: `{}` until K distinct principals sent it
    (K=3 by default), whatever one principal repeats; then it is written as is."""
    rec, path = recorder(tmp_path)
    for subject in ("u1", "u1", "u2", "u2"):  # two principals, twice each
        see(rec, "/kardex/by-name/Kerzerho", {"Kerzerho": 1, "id": 2},
            query="Kerzerho=1", subject=subject)
    rec.flush()
    (shape,) = lines(path)[0]["shapes"]
    assert "Kerzerho" not in path.read_text()
    assert shape["path"] == "/{}/by-name/{}"  # `kardex` is no API word either (yet)
    assert shape["query"] == ["{}"] and shape["fields"] == ["id", "{}"]
    see(rec, "/kardex/by-name/Kerzerho", {"Kerzerho": 1}, query="Kerzerho=1", subject="u3")
    rec.flush()
    (shape,) = lines(path)[1]["shapes"]
    assert shape["path"] == "/kardex/by-name/Kerzerho"
    assert shape["query"] == ["Kerzerho"] and shape["fields"] == ["Kerzerho"]


def test_a_threshold_of_one_principal_admits_every_word(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    rec = UsageRecorder(str(path), lambda: HEAD, clock=Clock(), min_principals=1)
    see(rec, "/kardex/Kerzerho", {"Kerzerho": 1}, query="Kerzerho=1")
    rec.flush()
    assert lines(path)[0]["shapes"][0]["path"] == "/kardex/Kerzerho"  # K=1: anything


def test_words_of_the_clients_policy_are_vocabulary() -> None:
    from vigie.learn.words import WordGate, policy_words

    route = Route(name="r", methods=frozenset({"GET"}), path="/kardex/{kardexId}",
                  segments=("kardex", None), params=("kardexId",))
    words = policy_words(ClientPolicy(client="c", routes=(route,)))
    assert {"kardex", "id"} <= words
    gate = WordGate()
    me = ("i", "s")
    assert not gate.admit("kardex", me)  # no policy names it (yet)
    assert gate.admit("kardex", me, words) and gate.admit("lastName", me)
    assert gate.admit("kardex", me)  # a word some policy wrote is vocabulary from then on
    assert not gate.admit("Quennec", me, words) and not gate.admit("Léa", me)
    assert not gate.admit("QUENNEC", me) and not gate.admit("Quennec-Morvandiau", me)
    assert not gate.admit("Q_u_e_n_n_e_c", me) and gate.admit("line_a", me)


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_",
                min_size=2, max_size=12).filter(lambda w: w[0].isalpha())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_NAME, _NAME, _NAME), min_size=1, max_size=5))
def test_one_principal_never_gets_a_word_written_that_is_not_vocabulary(
        words: list[tuple[str, str, str]]) -> None:
    """Whatever one principal sends, through any client, every literal word written is made
    of vocabulary parts (the tests' policies declare no route)."""
    import tempfile

    from vigie.learn.words import VOCABULARY, parts

    with tempfile.TemporaryDirectory() as tmp:
        rec, path = recorder(Path(tmp))
        for index, (segment, name, key) in enumerate(words):
            see(rec, f"/{segment}/{name}", {key: 1, "x": {name: 2}}, query=f"{name}=1",
                client=("pilot", "other")[index % 2])
        rec.flush()
        written: set[str] = set()
        for line in lines(path):
            for shape in line["shapes"]:
                written |= set(shape["path"].strip("/").split("/")) | set(shape["query"])
                written |= {part for field in shape["fields"] for part in field.split(".")}
    for word in written - {"{}", "x"}:
        assert all(p in VOCABULARY or p[:-1] in VOCABULARY or len(p) <= 1
                   for p in parts(word)), word


def test_the_demo_names_are_not_vocabulary_and_its_keys_are() -> None:
    """The 300 synthetic French names of the demo are never admitted by vocabulary alone;
    every key of its legacy and FHIR records is (one principal suffices for those)."""
    from vigie.demo.patients import patient, to_fhir
    from vigie.demo.places import FIRST_NAMES_FEMALE, FIRST_NAMES_MALE, LAST_NAMES
    from vigie.learn.words import WordGate

    gate, me = WordGate(), ("i", "s")
    names = {*FIRST_NAMES_FEMALE, *FIRST_NAMES_MALE, *LAST_NAMES}
    assert len(names) > 250 and [n for n in names if gate.admit(n, me)] == []
    records = [patient(i) for i in range(1, 40)]
    keys = set(_keys([*records, *(to_fhir(r) for r in records)]))
    assert len(keys) > 20 and [k for k in keys if not gate.admit(k, me)] == []
