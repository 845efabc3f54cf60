"""TLS in every client: verified by default, the hospital CA, hostname, mTLS, TLS 1.2+."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import pytest

from support.legacy_patients import legacy_server, patient_json
from support.upstream_pki import Pki
from upstream_integrity.conftest import CLIENTS, client_for
from upstream_integrity.test_stray_responses import ask
from vigie.config import Settings
from vigie.errors import ConfigError
from vigie.forward import Forwarder
from vigie.upstream.client import NativeForwarder
from vigie.upstream.libraries import AiohttpForwarder, HttpxForwarder
from vigie.upstream.options import UpstreamOptions, tls_context


def with_ca(kind: str, url: str, ca: Path) -> Forwarder:
    context = tls_context(Settings(upstream=url, upstream_ca_file=ca))
    options = UpstreamOptions(ssl_context=context, connect_timeout=2.0)
    return {"native": NativeForwarder, "aiohttp": AiohttpForwarder,
            "httpx": HttpxForwarder}[kind](url, options)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_the_hospital_ca_is_trusted_and_nothing_else(kind: str, pki: Pki) -> None:
    with legacy_server(tls=pki.server_context()) as server:
        trusted = with_ca(kind, server.url, pki.ca)
        assert await ask(trusted, "7") == (200, patient_json("7"))
        await trusted.close()
        for untrusted in (with_ca(kind, server.url, pki.other_ca),
                          # the system store does not know the test CA: verification is on
                          client_for(kind, server.url, None)):
            assert await ask(untrusted, "7") == "UpstreamError"
            await untrusted.close()
    assert server.seen == [b"GET /patients/7 HTTP/1.1"]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_the_hostname_is_checked(kind: str, pki: Pki) -> None:
    # a certificate from the trusted CA, but for another host: refused
    with legacy_server(tls=pki.server_context(elsewhere=True)) as server:
        client = with_ca(kind, server.url, pki.ca)
        assert await ask(client, "7") == "UpstreamError"
        await client.close()
    assert server.seen == []
    with legacy_server(tls=pki.server_context()) as server:  # SNI and name: localhost
        named = with_ca(kind, server.url.replace("127.0.0.1", "localhost"), pki.ca)
        assert await ask(named, "7") == (200, patient_json("7"))
        await named.close()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_mutual_tls_presents_the_client_certificate(kind: str, pki: Pki) -> None:
    with legacy_server(tls=pki.server_context(require_client=True)) as server:
        without = client_for(kind, server.url, pki)
        assert await ask(without, "8") == "UpstreamError"
        await without.close()
        client = client_for(kind, server.url, pki, client_cert=True)
        assert await ask(client, "8") == (200, patient_json("8"))
        await client.close()


async def test_tls_below_1_2_is_refused(pki: Pki) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.load_cert_chain(pki.server_cert, pki.server_key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    context = tls_context(Settings(upstream="https://x", upstream_ca_file=pki.ca))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with legacy_server(tls=old) as server:
        client = with_ca("native", server.url, pki.ca)
        assert await ask(client, "9") == "UpstreamError"
        await client.close()


def test_unusable_tls_files_stop_start_up(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="upstream_ca_file"):
        tls_context(Settings(upstream="https://x", upstream_ca_file=missing))
    with pytest.raises(ConfigError, match="upstream_client_cert_file"):
        tls_context(Settings(upstream="https://x", upstream_client_cert_file=pki.ca,
                             upstream_client_key_file=pki.ca))
