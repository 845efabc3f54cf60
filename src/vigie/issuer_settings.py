"""The `issuers[]` settings: which token issuers are trusted, and how their keys are fetched.

Parsed by `vigie.config` (which re-exports `IssuerSettings`); every error names the
file, line and key. docs/identity.md documents each key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from vigie import yamlsrc
from vigie.errors import ConfigError

T = TypeVar("T")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: Path | None = None
    client_claim: str = "azp"
    leeway_seconds: int = 30
    # Also the bound on how long a key the IdP withdrew stays trusted: a JWKS
    # Cache-Control max-age may shorten the refresh interval, never lengthen it.
    jwks_refresh_seconds: int = 300
    discovery_url: str | None = None  # OIDC discovery instead of jwks_url / jwks_file
    ca_file: Path | None = None  # PEM CA(s) trusted for this issuer, besides the system store
    # A key set that could not be refreshed for longer than this is no longer trusted.
    jwks_max_stale_seconds: int = 86_400
    jwks_cache_file: Path | None = None  # last good JWKS, used at start-up when the IdP is down


class Reader(Protocol):
    """What `vigie.config`'s reader offers the issuer parser."""

    def error(self, path: yamlsrc.Path, message: str) -> ConfigError: ...
    def mapping(self, raw: Any, path: yamlsrc.Path, allowed: set[str]) -> dict[str, Any]: ...
    def typed(self, raw: Any, path: yamlsrc.Path, kind: type[T], what: str) -> T: ...
    def path(self, raw: Any, key: yamlsrc.Path) -> Path: ...


ISSUER_KEYS = {"issuer", "audiences", "jwks_url", "jwks_file", "discovery_url", "algorithms",
                "client_claim", "leeway_seconds", "jwks_refresh_seconds", "ca_file",
                "jwks_max_stale_seconds", "jwks_cache_file"}


def parse_issuer(raw: Any, path: yamlsrc.Path, r: Reader) -> IssuerSettings:
    """One `issuers[]` entry, validated; errors name the file, line and key."""
    item = r.mapping(raw, path, ISSUER_KEYS)
    if not item.get("issuer"):
        raise r.error((*path, "issuer"), "missing required key")
    audiences = item.get("audiences")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not audiences or not isinstance(audiences, list):
        raise r.error((*path, "audiences"), "must be a non-empty list")
    algorithms = item.get("algorithms", ["RS256"])
    if not isinstance(algorithms, list) or not algorithms:
        raise r.error((*path, "algorithms"), "must be a non-empty list")
    for index, alg in enumerate(algorithms):
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise r.error((*path, "algorithms", index),
                          f"algorithm {alg!r} is not allowed (asymmetric algorithms only)")
    sources = [key for key in ("jwks_url", "jwks_file", "discovery_url") if item.get(key)]
    if len(sources) != 1:
        raise r.error(path, "exactly one of jwks_url, jwks_file or discovery_url is required")
    for key in ("jwks_url", "discovery_url"):
        if key in item and urlsplit(str(item[key])).scheme not in ("http", "https"):
            raise r.error((*path, key), "must be an http:// or https:// URL")
    claim = item.get("client_claim", "azp")

    def seconds(key: str, default: int) -> int:
        value = r.typed(item.get(key, default), (*path, key), int, "a number of seconds")
        if value < 0 or (value == 0 and key != "leeway_seconds"):
            raise r.error((*path, key), "must be a positive number of seconds")
        return value

    def optional_path(key: str) -> Path | None:
        return None if item.get(key) is None else r.path(item[key], (*path, key))

    refresh, max_stale = (seconds("jwks_refresh_seconds", 300),
                          seconds("jwks_max_stale_seconds", 86_400))
    if max_stale < refresh:
        raise r.error((*path, "jwks_max_stale_seconds"),
                      "must be at least jwks_refresh_seconds")
    ca_file = optional_path("ca_file")
    if ca_file is not None and not ca_file.is_file():
        raise r.error((*path, "ca_file"), f"{ca_file} is not a readable file")
    return IssuerSettings(
        issuer=str(item["issuer"]),
        audiences=tuple(str(a) for a in audiences),
        algorithms=tuple(algorithms),
        jwks_url=None if item.get("jwks_url") is None else str(item["jwks_url"]),
        jwks_file=optional_path("jwks_file"),
        discovery_url=None if item.get("discovery_url") is None else str(item["discovery_url"]),
        client_claim=r.typed(claim, (*path, "client_claim"), str, "a claim name"),
        leeway_seconds=seconds("leeway_seconds", 30),
        jwks_refresh_seconds=refresh,
        ca_file=ca_file,
        jwks_max_stale_seconds=max_stale,
        jwks_cache_file=optional_path("jwks_cache_file"),
    )
