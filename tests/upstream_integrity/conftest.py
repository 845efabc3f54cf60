"""Shared fixtures: one PKI per module run, and a factory for every upstream client option."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.harness import Harness, Keys
from support.legacy_patients import LegacyServer, legacy_server
from support.upstream_pki import Pki, make_pki
from vigie.config import Settings
from vigie.forward import Forwarder
from vigie.upstream.client import NativeForwarder
from vigie.upstream.libraries import AiohttpForwarder, HttpxForwarder
from vigie.upstream.options import UpstreamOptions, tls_context

CLIENTS = ("native", "aiohttp", "httpx")
POLICY = """\
client: app
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$"
      fields: {id: keep, name: keep, nir: keep}
  - name: notes
    methods: [POST]
    path: /notes
    request: {body: allowed, max_bytes: 1000, content_types: [application/json]}
limits:
  requests: 100000/minute
  records: 1000000/hour
  distinct_patients: 100000/day
  enumeration: false
"""
_KEYS: list[Keys] = []


def keys() -> Keys:
    if not _KEYS:
        _KEYS.append(Keys())
    return _KEYS[0]


@contextlib.contextmanager
def vigie_before_legacy(folder: Path, *, config: str = "", env: dict[str, str] | None = None
                        ) -> Iterator[tuple[Harness, LegacyServer]]:
    """A well-behaved legacy server and Vigie (POLICY) in front of it."""
    with legacy_server() as server, Harness(folder, {"app.yaml": POLICY}, config=config,
                                            env=env, keys=keys(),
                                            upstream_url=server.url) as h:
        yield h, server
MakeClient = Callable[..., Forwarder]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_for(kind: str, url: str, pki: Pki | None = None, *, client_cert: bool = False,
               **options: object) -> Forwarder:
    """`kind` talking to `url`; https:// trusts the test CA (and presents a client cert)."""
    context = None
    if url.startswith("https://") and pki is not None:
        settings = Settings(upstream=url, upstream_ca_file=pki.ca,
                            upstream_client_cert_file=pki.client_cert if client_cert else None,
                            upstream_client_key_file=pki.client_key if client_cert else None)
        context = tls_context(settings)
    built = UpstreamOptions(ssl_context=context, connect_timeout=2.0)
    for key, value in options.items():
        built = _with(built, key, value)
    if kind == "native":
        return NativeForwarder(url, built)
    if kind == "aiohttp":
        return AiohttpForwarder(url, built)
    return HttpxForwarder(url, built)


def _with(options: UpstreamOptions, key: str, value: object) -> UpstreamOptions:
    from dataclasses import replace
    return replace(options, **{key: value})
