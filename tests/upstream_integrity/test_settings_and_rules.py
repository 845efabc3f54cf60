"""The new settings and the route `request:` key: defaults, validation with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.config import load_settings
from vigie.errors import BadRequest, ConfigError, PayloadTooLarge, UnsupportedMediaType
from vigie.policy.loader import check_policies, load_policies
from vigie.policy.model import Route
from vigie.request_body import BodyLimits, expected_body


def settings_from(tmp_path: Path, text: str) -> object:
    path = tmp_path / "vigie.yaml"
    path.write_text("upstream: https://legacy.example\n" + text)
    return load_settings(path, {})


def test_defaults_are_safe(tmp_path: Path) -> None:
    s = settings_from(tmp_path, "")
    assert (s.upstream_keepalive, s.upstream_echoes_request_id) == (True, False)  # type: ignore[attr-defined]
    assert s.upstream_pool_timeout_seconds == 5.0  # type: ignore[attr-defined]
    assert s.listen.max_header_bytes == 32_768  # type: ignore[attr-defined]
    assert s.listen.header_timeout_seconds == 10.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "key", "line"), [
    ("upstream_keepalive: maybe\n", "upstream_keepalive", 2),
    ("upstream_max_connections: 0\n", "upstream_max_connections", 2),
    ("upstream_pool_timeout_seconds: -1\n", "upstream_pool_timeout_seconds", 2),
    ("upstream_client_cert_file: c.pem\n", "upstream_client_cert_file", 2),
    ("listen:\n  max_header_bytes: 0\n", "listen.max_header_bytes", 3),
    ("request_body_timeout_seconds: soon\n", "request_body_timeout_seconds", 2),
])
def test_bad_settings_name_file_line_and_key(tmp_path: Path, text: str, key: str,
                                            line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert f"vigie.yaml:{line}:" in str(caught.value) and key in str(caught.value)


def test_request_rule_is_loaded_and_checked(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("""\
client: app
routes:
  - name: search
    methods: [GET, POST]
    path: /search
    request: {body: allowed, max_bytes: 10, content_types: [application/json]}
  - name: read
    methods: [GET, DELETE]
    path: /items/{id}
""")
    policies = load_policies(tmp_path)
    search, read = policies.clients["app"].routes
    limits = BodyLimits(max_bytes=100)
    json = [("content-type", "application/json; charset=utf-8")]
    assert expected_body("GET", search, [("content-length", "5"), *json], limits) is not None
    with pytest.raises(PayloadTooLarge):
        expected_body("POST", search, [("content-length", "11"), *json], limits)
    with pytest.raises(UnsupportedMediaType):
        expected_body("POST", search, [("content-length", "2"),
                                       ("content-type", "text/plain")], limits)
    for method in ("GET", "DELETE"):
        assert expected_body(method, read, [("content-length", "0")], limits) is None
        for framing in ([("content-length", "1")], [("transfer-encoding", "chunked")]):
            with pytest.raises(BadRequest) as caught:
                expected_body(method, read, framing, limits)
            assert caught.value.status == 400
            assert caught.value.headers == {"Connection": "close"}


@pytest.mark.parametrize("framing", [
    [("content-length", "3"), ("content-length", "4")],
    [("content-length", "3"), ("transfer-encoding", "chunked")],
    [("content-length", "+3")], [("content-length", "٣")],
])
def test_ambiguous_request_framing_is_400(framing: list[tuple[str, str]]) -> None:
    post = Route(name="p", methods=frozenset({"POST"}), path="/p", segments=("p",), params=())
    with pytest.raises(BadRequest) as caught:
        expected_body("POST", post, framing, BodyLimits())
    assert caught.value.status == 400


def test_bad_request_rules_are_reported_with_lines(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("""\
client: app
routes:
  - name: a
    methods: [POST]
    path: /a
    request: {body: maybe, max_bytes: -1, content_types: [json], extra: 1}
""")
    errors = check_policies(tmp_path)
    text = "\n".join(errors)
    for fragment in ("routes[0].request.body", "routes[0].request.max_bytes",
                     "routes[0].request.content_types[0]", "routes[0].request.extra"):
        assert fragment in text
    assert all(":6:" in line for line in errors)
