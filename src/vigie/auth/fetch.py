"""Fetching an issuer's JWKS: from a file, a `jwks_url`, or OIDC discovery, over verified TLS.

TLS trusts the operating system's store (the `truststore` package: the hospital's
internal CA installed on the host is trusted as it is by the host's other tools),
plus an issuer's own `ca_file` when set. A failed fetch raises `FetchError` whose
message names what failed (HTTP status, TLS verification, timeout, ...) from a
fixed vocabulary: never a body, a key or a library's exception text.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import truststore

from vigie.issuer_settings import IssuerSettings

JWKS_HTTP_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 1024 * 1024
MAX_DISCOVERY_BYTES = 256 * 1024

# OpenSSL verify codes an operator meets in practice, in words (the rest by number).
_VERIFY_CODES = {
    2: "the issuer certificate of a chain certificate is unknown",
    9: "a certificate is not yet valid",
    10: "the certificate has expired",
    18: "the certificate is self-signed and not trusted",
    19: "a self-signed certificate in the chain is not trusted (add it with ca_file)",
    20: "the certificate's CA is not trusted (add the CA with ca_file or to the system store)",
    21: "the server sent an incomplete chain (unable to verify the first certificate)",
    62: "the certificate does not name the host of the URL",
}


class FetchError(Exception):
    """A JWKS fetch that failed; the message names the cause, never key material or bodies."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system trust store, plus `ca_file` (PEM) when given."""
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class JwksClients:
    """One HTTP client per distinct `ca_file` (None: the system store only), shared by issuers."""

    def __init__(self) -> None:
        self._clients: dict[Path | None, httpx.AsyncClient] = {}

    def for_issuer(self, settings: IssuerSettings) -> httpx.AsyncClient | None:
        if settings.jwks_url is None and settings.discovery_url is None:
            return None
        client = self._clients.get(settings.ca_file)
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(JWKS_HTTP_TIMEOUT_SECONDS),
                follow_redirects=False,
                verify=tls_context(settings.ca_file),
                headers={"User-Agent": "vigie-jwks"},
            )
            self._clients[settings.ca_file] = client
        return client

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        self._clients.clear()


async def fetch_jwks(settings: IssuerSettings,
                     client: httpx.AsyncClient | None) -> tuple[bytes, str | None]:
    """The JWKS document and its Cache-Control header (None for files)."""
    if settings.jwks_file is not None:
        return await asyncio.to_thread(read_file, settings.jwks_file), None
    if client is None:
        raise FetchError("no HTTP client for this issuer")
    url = settings.jwks_url
    if url is None:
        assert settings.discovery_url is not None  # noqa: S101 - config requires one source
        url = await _discover(settings, settings.discovery_url, client)
    return await _get(client, url, MAX_JWKS_BYTES,
                      "application/jwk-set+json, application/json")


async def _discover(settings: IssuerSettings, discovery_url: str,
                    client: httpx.AsyncClient) -> str:
    """`jwks_uri` from the OpenID Provider metadata, whose `issuer` must be ours (OIDC §4.3)."""
    document, _ = await _get(client, discovery_url, MAX_DISCOVERY_BYTES, "application/json")
    try:
        metadata = orjson.loads(document)
    except orjson.JSONDecodeError:
        raise FetchError("discovery document is not JSON") from None
    if not isinstance(metadata, dict):
        raise FetchError("discovery document is not a JSON object")
    if metadata.get("issuer") != settings.issuer:
        raise FetchError("discovery document names another issuer than the configured one")
    jwks_uri = metadata.get("jwks_uri")
    if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("https", "http"):
        raise FetchError("discovery document has no http(s) jwks_uri")
    if urlsplit(discovery_url).scheme == "https" and urlsplit(jwks_uri).scheme != "https":
        raise FetchError("discovery over https names a plain-http jwks_uri")
    return jwks_uri


async def _get(client: httpx.AsyncClient, url: str, limit: int,
               accept: str) -> tuple[bytes, str | None]:
    try:
        async with client.stream("GET", url, headers={"Accept": accept}) as response:
            if response.status_code != 200:
                raise FetchError(f"HTTP status {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FetchError("document too large")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError("document too large")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("cache-control")
    except httpx.HTTPError as exc:
        raise FetchError(describe(exc)) from None


def describe(exc: BaseException) -> str:
    """A fixed-vocabulary cause for an HTTP failure: the TLS failure when there is one."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            code = cause.verify_code
            return ("TLS certificate verification failed: "
                    + _VERIFY_CODES.get(code, f"OpenSSL verify code {code}"))
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason if isinstance(cause.reason, str) else "unknown"
            return f"TLS handshake failed ({reason})"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__})"


def read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_JWKS_BYTES:
        raise FetchError("document too large")
    return data
