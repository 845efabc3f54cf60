"""Listener TLS end to end: HTTPS through the proxy, renewal without restart, client certs."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.configs import minimal_config
from support.harness import Harness, Keys
from support.pki import CA, Issued, peer_serial
from vigie.config import load_settings
from vigie.errors import ConfigError
from vigie.tls import ServerTLS, TLSSettings

POLICY = """\
client: app
routes:
  - name: items
    methods: [GET]
    path: /items/{id}
    scopes: [items]
"""


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def _tls_config(folder: Path, issued: Issued, extra: str = "") -> str:
    cert, key = issued.write(folder, "server")
    return (f"listen: {{tls: {{cert_file: {cert}, key_file: {key}, reload_seconds: 0.05"
            f"{extra}}}}}\n")


def _https(url: str) -> str:
    return url.replace("http://", "https://", 1)


def _client_context(ca: CA, *, cert: Issued | None = None, tmp: Path | None = None,
                    maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    if maximum is not None:
        context.maximum_version = maximum
    if cert is not None and tmp is not None:
        cert_path, key_path = cert.write(tmp, f"client-{cert.serial}")
        context.load_cert_chain(cert_path, key_path)
    return context


def _handshake(url: str, context: ssl.SSLContext) -> ssl.SSLSocket:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=5)
    return context.wrap_socket(raw, server_hostname=host)


def _served_serial(url: str, ca: CA) -> int:
    with _handshake(url, _client_context(ca)) as conn:
        return peer_serial(conn.getpeercert(binary_form=True))


@pytest.fixture(scope="module")
def tls_harness(tmp_path_factory: pytest.TempPathFactory, ca: CA,
                keys: Keys) -> Iterator[tuple[Harness, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    with Harness(tmp, {"app.yaml": POLICY}, keys=keys,
                 config=_tls_config(tmp, ca.issue("vigie", server=True))) as h:
        yield h, tmp


def test_the_proxy_serves_https_and_no_plain_http(tls_harness: tuple[Harness, Path],
                                                    ca: CA) -> None:
    h, _ = tls_harness
    h.upstream.reply(json={"id": "1"})
    with httpx.Client(verify=_client_context(ca), timeout=5) as client:
        response = client.get(f"{_https(h.base_url)}/items/1",
                              headers={"Authorization": f"Bearer {h.token('app', scope='items')}"})
    assert response.status_code == 200
    assert response.json() == {"id": "1"}
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port is not served
        httpx.get(f"{h.base_url}/items/1", timeout=5)


def test_tls_1_2_is_the_floor(tls_harness: tuple[Harness, Path], ca: CA) -> None:
    h, _ = tls_harness
    with _handshake(h.base_url, _client_context(ca)) as conn:
        assert conn.version() == "TLSv1.3"
    with _handshake(h.base_url, _client_context(ca, maximum=ssl.TLSVersion.TLSv1_2)) as conn:
        assert conn.version() == "TLSv1.2"
        cipher = conn.cipher()
        assert cipher is not None and cipher[0].startswith("ECDHE-")  # forward secret


def test_older_versions_are_never_offered_and_1_3_can_be_required(tmp_path: Path,
                                                                  ca: CA) -> None:
    cert, key = ca.issue("vigie", server=True).write(tmp_path, "server")
    floor = ServerTLS(TLSSettings(cert_file=cert, key_file=key)).context
    assert floor.minimum_version == ssl.TLSVersion.TLSv1_2
    strict = ServerTLS(TLSSettings(cert_file=cert, key_file=key, min_version="1.3")).context
    with pytest.raises(ssl.SSLError):
        _memory_handshake(strict, _client_context(ca, maximum=ssl.TLSVersion.TLSv1_2))


def test_a_renewed_certificate_is_served_without_restart(tls_harness: tuple[Harness, Path],
                                                          ca: CA) -> None:
    h, tmp = tls_harness
    before = _served_serial(h.base_url, ca)
    renewed = ca.issue("vigie", server=True)
    cert_tmp, key_tmp = renewed.write(tmp, "incoming")
    os.replace(key_tmp, tmp / "server.key")  # as a Secret volume swaps its files
    os.replace(cert_tmp, tmp / "server.crt")
    deadline = time.monotonic() + 10
    while (served := _served_serial(h.base_url, ca)) == before:
        assert time.monotonic() < deadline, "the renewed certificate was never served"
        time.sleep(0.02)
    assert served == renewed.serial


def _memory_handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> int:
    """Handshake two contexts in memory; the serial the client saw."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client_side, server_side):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if client_side.version() and server_side.version():
            break
    return peer_serial(client_side.getpeercert(binary_form=True))


def test_a_renewal_that_does_not_load_keeps_the_previous_certificate(tmp_path: Path,
                                                                     ca: CA) -> None:
    first = ca.issue("vigie", server=True)
    cert, key = first.write(tmp_path, "server")
    tls = ServerTLS(TLSSettings(cert_file=cert, key_file=key))
    client = _client_context(ca)
    assert _memory_handshake(tls.context, client) == first.serial
    second, third = ca.issue("vigie", server=True), ca.issue("vigie", server=True)
    cert.write_bytes(second.cert_pem)
    key.write_bytes(third.key_pem)  # the key of another certificate
    assert tls.reload_if_changed() is False
    assert _memory_handshake(tls.context, client) == first.serial
    key.write_bytes(second.key_pem + b"\n")  # completed: size changes, so does the stamp
    assert tls.reload_if_changed() is True
    assert _memory_handshake(tls.context, client) == second.serial
    assert tls.reload_if_changed() is False  # unchanged files: nothing to do


@pytest.fixture(scope="module")
def mtls_harness(tmp_path_factory: pytest.TempPathFactory, ca: CA,
                 keys: Keys) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("mtls")
    (tmp / "clients-ca.crt").write_bytes(ca.cert_pem)
    extra = f", client_ca_file: {tmp / 'clients-ca.crt'}, client_auth: required"
    with Harness(tmp, {"app.yaml": POLICY}, keys=keys,
                 config=_tls_config(tmp, ca.issue("vigie", server=True), extra)) as h:
        yield h


def test_required_client_certificates_gate_the_connection(mtls_harness: Harness, ca: CA,
                                                          tmp_path: Path) -> None:
    h = mtls_harness
    h.upstream.reply(json={"id": "7"})
    url = f"{_https(h.base_url)}/items/7"
    auth = {"Authorization": f"Bearer {h.token('app', scope='items')}"}
    machine = _client_context(ca, cert=ca.issue("lab-analyzer", server=False), tmp=tmp_path)
    with httpx.Client(verify=machine, timeout=5) as client:
        assert client.get(url, headers=auth).status_code == 200
    stranger_ca = CA("Another CA")
    stranger = _client_context(ca, cert=stranger_ca.issue("lab", server=False), tmp=tmp_path)
    for context in (_client_context(ca), stranger):
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=context, timeout=5) as client:
            client.get(url, headers=auth)
    seen = len(h.upstream.requests)
    assert seen == 1  # refused handshakes reached nothing




@pytest.mark.parametrize(("tls", "key"), [
    ("{cert_file: server.crt}", "listen.tls.key_file"),
    ("{cert_file: server.crt, key_file: server.key, client_auth: required}",
     "listen.tls.client_ca_file"),
    ("{cert_file: server.crt, key_file: server.key, min_version: '1.1'}",
     "listen.tls.min_version"),
    ("{cert_file: server.crt, key_file: other.key}", "listen.tls"),
    ("{cert_file: server.crt, key_file: missing.key}", "listen.tls"),
])
def test_a_bad_tls_setting_stops_start_up_naming_the_key(tmp_path: Path, ca: CA, tls: str,
                                                         key: str) -> None:
    ca.issue("vigie", server=True).write(tmp_path, "server")
    (tmp_path / "other.key").write_bytes(ca.issue("x", server=True).key_pem)
    config = minimal_config(tmp_path, f"listen:\n  tls: {tls}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert f"(key '{key}')" in str(caught.value)
    assert "vigie.yaml:4:" in str(caught.value)  # the line of the tls mapping


def test_tls_settings_resolve_relative_paths_and_default_to_no_client_auth(
        tmp_path: Path, ca: CA) -> None:
    ca.issue("vigie", server=True).write(tmp_path, "server")
    settings = load_settings(minimal_config(
        tmp_path, "listen:\n  tls: {cert_file: server.crt, key_file: server.key}\n"), {})
    assert settings.listen.tls == TLSSettings(cert_file=tmp_path / "server.crt",
                                              key_file=tmp_path / "server.key")
    assert settings.admin.tls is None


def test_the_private_key_copy_used_for_loading_does_not_outlive_the_load(
        tmp_path: Path, ca: CA, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cert, key = ca.issue("vigie", server=True).write(tmp_path, "server")
    tls = ServerTLS(TLSSettings(cert_file=cert, key_file=key))
    key.write_bytes(key.read_bytes() + b"\n")
    assert tls.reload_if_changed() is True
    assert list(scratch.iterdir()) == []
