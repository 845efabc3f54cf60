"""The issuer settings of 0.2: discovery, ca_file, staleness, last good copy; bad values stop
start-up naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.config import load_settings
from vigie.errors import ConfigError

BASE = "upstream: http://127.0.0.1:9\nissuers:\n  - issuer: https://idp.example/realms/care\n" \
       "    audiences: [patient-api]\n"


def load(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "vigie.yaml"
    config.write_text(BASE + extra)
    return load_settings(config, {})


def test_the_new_keys_are_read(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load(tmp_path, (
        "    discovery_url: https://idp.example/realms/care/.well-known/openid-configuration\n"
        "    ca_file: ./ca.pem\n    jwks_max_stale_seconds: 3600\n"
        "    jwks_cache_file: ./state/care.json\n"))
    issuer = settings.issuers[0]
    assert issuer.discovery_url and issuer.jwks_url is None
    assert issuer.ca_file == tmp_path / "ca.pem"
    assert issuer.jwks_cache_file == tmp_path / "state" / "care.json"
    assert issuer.jwks_max_stale_seconds == 3600


def test_defaults(tmp_path: Path) -> None:
    issuer = load(tmp_path, "    jwks_url: https://idp.example/certs\n").issuers[0]
    assert (issuer.jwks_refresh_seconds, issuer.jwks_max_stale_seconds) == (300, 86_400)
    assert issuer.ca_file is None and issuer.jwks_cache_file is None


@pytest.mark.parametrize(("extra", "key", "line"), [
    ("    jwks_url: https://a/certs\n    discovery_url: https://a/.well-known/x\n",
     "issuers.0", 3),
    ("    discovery_url: ftp://idp.example/x\n", "issuers.0.discovery_url", 5),
    ("    jwks_url: https://a\n    ca_file: ./missing.pem\n", "issuers.0.ca_file", 6),
    ("    jwks_url: https://a\n    jwks_refresh_seconds: 600\n"
     "    jwks_max_stale_seconds: 300\n", "issuers.0.jwks_max_stale_seconds", 7),
    ("    jwks_url: https://a\n    jwks_max_stale_seconds: 0\n",
     "issuers.0.jwks_max_stale_seconds", 6),
])
def test_bad_values_name_file_line_and_key(tmp_path: Path, extra: str, key: str,
                                           line: int) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, extra)
    assert f"vigie.yaml:{line}:" in str(refused.value)
    assert f"(key '{key}')" in str(refused.value)
