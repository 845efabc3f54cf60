"""The public address of a request, and the link settings' validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vigie.config import load_settings
from vigie.errors import ConfigError
from vigie.policy.loader import check_policies
from vigie.rewrite.public import PublicAddress

FORWARDED = [("host", "vigie.internal:8080"), ("x-forwarded-host", "care.example, proxy.lan"),
             ("x-forwarded-proto", "https")]


def scope(peer: str = "10.1.2.3", scheme: str = "http") -> dict[str, Any]:
    return {"client": (peer, 50000), "server": ("10.9.9.9", 8080), "scheme": scheme}


def test_public_url_wins_over_every_header() -> None:
    address = PublicAddress("https://vigie.example/", ["10.0.0.0/8"])
    assert address.base(scope(), FORWARDED) == "https://vigie.example"


def test_forwarded_headers_count_only_from_trusted_proxies() -> None:
    trusted = PublicAddress(None, ["10.0.0.0/8", "::1"])
    assert trusted.base(scope("10.1.2.3"), FORWARDED) == "https://care.example"
    assert trusted.base(scope("192.0.2.7"), FORWARDED) == "http://vigie.internal:8080"
    assert trusted.base(scope("::1"), FORWARDED) == "https://care.example"
    nobody = PublicAddress(None)
    assert nobody.base(scope("10.1.2.3"), FORWARDED) == "http://vigie.internal:8080"


@pytest.mark.parametrize("host", ['evil"x', "a b", "x/y", "", "h@evil", "a" * 300])
def test_a_malformed_host_falls_back_to_the_listener(host: str) -> None:
    address = PublicAddress(None, ["10.0.0.0/8"])
    headers = [("host", host), ("x-forwarded-host", host), ("x-forwarded-proto", "javascript")]
    assert address.base(scope(), headers) == "http://10.9.9.9:8080"


def test_the_upstream_is_told_only_when_asked() -> None:
    assert PublicAddress(None).upstream_headers("https://vigie.example") == []
    told = PublicAddress(None, send_forwarded=True)
    assert told.upstream_headers("https://vigie.example:8443/legacy") == [
        ("x-forwarded-proto", "https"), ("x-forwarded-host", "vigie.example:8443"),
        ("x-forwarded-prefix", "/legacy")]


def test_settings_are_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://legacy:8000\npublic_url: https://vigie.example/\n"
                      "trusted_proxies: [10.0.0.0/8, 127.0.0.1]\n"
                      "upstream_aliases: [https://ehr.example/fhir]\n"
                      "upstream_forwarded_headers: true\n")
    links = load_settings(config, {}).links
    assert links.public_url == "https://vigie.example"
    assert links.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert links.upstream_aliases == ("https://ehr.example/fhir",)
    assert links.upstream_forwarded_headers is True
    env = load_settings(config, {"VIGIE_PUBLIC_URL": "https://other.example"}).links
    assert env.public_url == "https://other.example"


@pytest.mark.parametrize(("line", "key"), [
    ("public_url: ftp://vigie.example", "public_url"),
    ("public_url: https://vigie.example/?a=1", "public_url"),
    ('public_url: "https://vigie.example/a\\"b"', "public_url"),
    ("trusted_proxies: [10.0.0.0/8, not-an-ip]", "trusted_proxies.1"),
    ("trusted_proxies: 10.0.0.0/8", "trusted_proxies"),
    ("upstream_aliases: [legacy.example]", "upstream_aliases.0"),
    ("upstream_forwarded_headers: yes please", "upstream_forwarded_headers"),
])
def test_bad_link_settings_stop_start_up_naming_file_line_and_key(tmp_path: Path, line: str,
                                                                  key: str) -> None:
    config = tmp_path / "vigie.yaml"
    config.write_text(f"upstream: http://legacy:8000\n\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert caught.value.line == 3 and f"key '{key}'" in str(caught.value)


def test_a_malformed_smart_scope_is_a_policy_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("client: a\nroutes:\n  - name: r\n    methods: [GET]\n"
                                     "    path: /fhir/Patient\n"
                                     "    scopes: [patient/Patient.rsx, patient.read]\n")
    errors = check_policies(tmp_path)
    assert len(errors) == 1 and "a.yaml:6:" in errors[0] and "SMART" in errors[0]


def test_links_built_once_per_public_base_and_bounded() -> None:
    from vigie.rewrite import rewriter
    from vigie.rewrite.settings import LinkSettings

    links = rewriter.LinkRewriter("http://10.0.0.5:8080/api", LinkSettings(), 1 << 20)
    first = links.for_request(scope(), [("host", "care.example")])
    assert links.for_request(scope(), [("host", "care.example")]) is first
    other = links.for_request(scope(), [("host", "other.example")])
    assert other.public == "http://other.example" and first.public == "http://care.example"
    for n in range(rewriter._MAX_BUILT + 10):  # a client choosing Host cannot grow it
        links.for_request(scope(), [("host", f"h{n}.example")])
    assert len(links._built) <= rewriter._MAX_BUILT
