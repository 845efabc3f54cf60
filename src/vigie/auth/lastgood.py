"""The last good JWKS of an issuer, kept on disk so a restart during an IdP outage is ready.

The file (`issuers[].jwks_cache_file`) holds the issuer, the time of the fetch
and the document as it was fetched. It only holds public keys. A copy is used
at start-up only when it names the same issuer and is not older than
`jwks_max_stale_seconds`: its age counts from the original fetch, so a restart
never extends how long a set that could not be refreshed is trusted.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import orjson

log = logging.getLogger("vigie.auth.jwks")

MAX_COPY_BYTES = 2 * 1024 * 1024


def save(path: Path, issuer: str, fetched_at: float, document: bytes) -> None:
    """Write the copy atomically (a crash never leaves half a file); failures are logged."""
    body = orjson.dumps({"issuer": issuer, "fetched_at": fetched_at,
                         "jwks": document.decode("utf-8", errors="replace")})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as out:
            out.write(body)
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("cannot write the last good JWKS copy for issuer %s to %s (%s)",
                    issuer, path, type(exc).__name__)


def load(path: Path, issuer: str) -> tuple[float, bytes] | None:
    """(fetched_at, document) of a copy made for `issuer`, or None (logged) when unusable."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_COPY_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the last good JWKS copy %s (%s)", path, type(exc).__name__)
        return None
    try:
        copy = orjson.loads(raw) if len(raw) <= MAX_COPY_BYTES else None
    except orjson.JSONDecodeError:
        copy = None
    if (not isinstance(copy, dict) or copy.get("issuer") != issuer
            or not isinstance(copy.get("fetched_at"), int | float)
            or not isinstance(copy.get("jwks"), str)):
        log.warning("the last good JWKS copy %s is not a copy for issuer %s; ignored",
                    path, issuer)
        return None
    return float(copy["fetched_at"]), copy["jwks"].encode("utf-8")
