"""Keyed pseudonyms: HMAC-SHA256 under a key derived per client.

The same value gives the same `psn-` token for one client, across restarts and
replicas (same key file), and a different token for another client, so that two
clients' datasets cannot be joined. Principals (client, sub) use their own
derivation, so a user's pseudonym never equals a record pseudonym.

A token is `psn-` and 24 lower-case base32 characters: a valid FHIR id
(`[A-Za-z0-9.-]{1,64}`), so a pseudonymized `Patient.id` still parses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("vigie.pseudonym")

PREFIX = "psn-"
MIN_KEY_BYTES = 32


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonym key must hold at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._client_key = lru_cache(maxsize=1024)(self._derive)
        # One user makes many requests: their pseudonym is computed once.
        self.principal = lru_cache(maxsize=65536)(self._principal)  # type: ignore[method-assign]

    @classmethod
    def from_file(cls, path: Path) -> Pseudonymizer:
        # Only a trailing line break is not key material (`openssl rand -hex 32 > key`):
        # stripping all whitespace could shorten a binary key.
        return cls(path.read_bytes().rstrip(b"\r\n"))

    @classmethod
    def ephemeral(cls) -> Pseudonymizer:
        """A random key: pseudonyms are stable only for this process's life."""
        return cls(secrets.token_bytes(MIN_KEY_BYTES))

    def _derive(self, purpose: str) -> bytes:
        return hmac.new(self._key, b"vigie/v1/" + purpose.encode(), hashlib.sha256).digest()

    def token(self, client: str, value: str) -> str:
        """The pseudonym of a record value as `client` sees it."""
        mac = hmac.new(self._client_key("client:" + client), value.encode(), hashlib.sha256)
        return PREFIX + base64.b32encode(mac.digest()[:15]).decode().lower()

    def principal(self, client: str, subject: str) -> str:
        """The pseudonym of a user (token `sub`) for audit, events and quarantines."""
        return self._principal(client, subject)

    def _principal(self, client: str, subject: str) -> str:
        mac = hmac.new(self._client_key("principal"), f"{client}\0{subject}".encode(),
                       hashlib.sha256)
        return PREFIX + base64.b32encode(mac.digest()[:15]).decode().lower()
