"""Who may read the admin listener's `/metrics`: anyone, the admin token, or a scrape token.

    admin:
      metrics_auth: scrape        # none (default) | admin | scrape
      scrape_token_file: /etc/vigie/scrape-token

`admin`: `/metrics` needs `Authorization: Bearer <admin token>`. `scrape`: it needs the
scrape token (or the admin token), so that Prometheus holds a credential that can read
metrics but never lift a quarantine. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigie.tls import SettingsReader

METRICS_AUTH = ("none", "admin", "scrape")
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class MetricsAuth:
    mode: str = "none"
    scrape_token_file: Path | None = None


def parse_metrics_auth(admin_raw: dict[str, Any], r: SettingsReader) -> MetricsAuth:
    mode = admin_raw.get("metrics_auth", "none")
    if mode not in METRICS_AUTH:
        raise r.error(("admin", "metrics_auth"), f"must be one of {', '.join(METRICS_AUTH)}")
    raw_file = admin_raw.get("scrape_token_file")
    token_file = None if raw_file is None else r.path(raw_file, ("admin", "scrape_token_file"))
    if mode == "scrape" and token_file is None:
        raise r.error(("admin", "scrape_token_file"), "metrics_auth scrape needs a token file")
    if mode == "admin" and admin_raw.get("token_file") is None:
        raise r.error(("admin", "token_file"), "metrics_auth admin needs the admin token")
    return MetricsAuth(mode=mode, scrape_token_file=token_file)


def read_token(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the {what} must hold at least {MIN_TOKEN_LENGTH} characters")
    return token


def bearer_matches(header: str, *tokens: str | None) -> bool:
    """Whether `Authorization: Bearer X` names one of `tokens` (None entries never match)."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    presented = given.strip().encode()
    matched = False
    for token in tokens:  # every candidate compared: no timing hint of which one exists
        if token is not None:
            matched |= hmac.compare_digest(presented, token.encode())
    return matched
