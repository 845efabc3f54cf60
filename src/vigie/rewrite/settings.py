"""The settings of link rewriting, parsed from the configuration (config.py calls this)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vigie.rewrite.public import parse_networks

KEYS = ("public_url", "trusted_proxies", "upstream_aliases", "upstream_forwarded_headers")
_UNSAFE_IN_URL = frozenset('"\\<>\'` ')


@dataclass(frozen=True, slots=True)
class LinkSettings:
    public_url: str | None = None  # where clients reach Vigie; else derived per request
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-Proto/Host are believed
    upstream_aliases: tuple[str, ...] = ()  # other base URLs the upstream writes links with
    upstream_forwarded_headers: bool = False  # send X-Forwarded-Proto/Host to the upstream


def parse_link_settings(raw: dict[str, Any],
                        error: Callable[[tuple[str | int, ...], str], Exception]) -> LinkSettings:
    public = raw.get("public_url")
    if public is not None:
        public = _base_url(public, ("public_url",), error)
    proxies = _strings(raw.get("trusted_proxies"), "trusted_proxies", error)
    for index, proxy in enumerate(proxies):
        try:
            parse_networks([proxy])
        except ValueError as exc:
            raise error(("trusted_proxies", index), str(exc)) from exc
    aliases = tuple(_base_url(alias, ("upstream_aliases", index), error)
                    for index, alias in enumerate(
                        _strings(raw.get("upstream_aliases"), "upstream_aliases", error)))
    send = raw.get("upstream_forwarded_headers", False)
    if not isinstance(send, bool):
        raise error(("upstream_forwarded_headers",), "must be true or false")
    return LinkSettings(public, proxies, aliases, send)


def _strings(raw: Any, key: str,
             error: Callable[[tuple[str | int, ...], str], Exception]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise error((key,), "must be a list of strings")
    return tuple(raw)


def _base_url(raw: Any, path: tuple[str | int, ...],
              error: Callable[[tuple[str | int, ...], str], Exception]) -> str:
    if not isinstance(raw, str):
        raise error(path, "must be an http:// or https:// URL")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise error(path, "must be an http:// or https:// URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise error(path, "must not have a query, fragment or user")
    if any(c in _UNSAFE_IN_URL or ord(c) < 0x21 for c in raw):
        raise error(path, "must not contain quotes, backslashes, spaces or control characters")
    return raw.rstrip("/")
