"""One issuer's JWKS cache: fetched at start, refreshed in the background, never failing open.

The failure modes it avoids: a proxy that cannot start while the IdP is down
(start-up never raises; keys arrive when the IdP answers), a proxy that drops
every key on one bad fetch (the last good set stays in use), and a JWKS
endpoint hammered by tokens with random `kid`s (on-demand refreshes are rate
limited per issuer and concurrent ones share one fetch).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from vigie.auth.keys import JwksError, KeySet, VerificationKey, parse_jwks
from vigie.config import IssuerSettings
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.auth.jwks")

MIN_LIFETIME_SECONDS = 30.0
MAX_LIFETIME_SECONDS = 24 * 3600.0
UNKNOWN_KID_REFRESH_INTERVAL_SECONDS = 30.0
MAX_JWKS_BYTES = 1024 * 1024
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class FetchError(Exception):
    """A JWKS fetch that failed; the message names the cause, never key material or bodies."""


def max_age(cache_control: str | None) -> float | None:
    """Seconds from a Cache-Control header (`no-cache`/`no-store` count as 0), else None."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


class IssuerKeys:
    """The keys of one issuer, with the refresh policy around them.

    `clock` (wall time, seconds) only rates on-demand refreshes; background
    timing uses the event loop, so tests can move the clock without waiting.
    """

    def __init__(
        self,
        settings: IssuerSettings,
        metrics: Metrics,
        client: httpx.AsyncClient | None,
        *,
        clock: Callable[[], float],
        unknown_kid_interval: float = UNKNOWN_KID_REFRESH_INTERVAL_SECONDS,
        first_retry: float = FIRST_RETRY_SECONDS,
        min_lifetime: float = MIN_LIFETIME_SECONDS,
    ) -> None:
        if settings.jwks_url is None and settings.jwks_file is None:
            raise ValueError(f"issuer {settings.issuer!r} has neither jwks_url nor jwks_file")
        if settings.jwks_url is not None and client is None:
            raise ValueError("an HTTP client is required for jwks_url")
        self.settings = settings
        self._metrics = metrics
        self._client = client
        self._clock = clock
        self._unknown_kid_interval = unknown_kid_interval
        self._first_retry = first_retry
        self._min_lifetime = min_lifetime
        self._keys = KeySet()
        self._lifetime = self._clamp(float(settings.jwks_refresh_seconds))
        self._last_on_demand: float | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._failures = 0
        self._background: asyncio.Task[None] | None = None
        self.fetches = 0  # attempts, for tests and debugging

    @property
    def keys(self) -> KeySet:
        return self._keys

    @property
    def lifetime(self) -> float:
        """Seconds the current set stays fresh (Cache-Control max-age, clamped)."""
        return self._lifetime

    @property
    def source(self) -> str:
        return self.settings.jwks_url or str(self.settings.jwks_file)

    async def start(self) -> None:
        """Fetch once (never raises), then keep the set fresh in the background."""
        await self.refresh()
        self._background = asyncio.create_task(self._refresh_forever(),
                                               name=f"jwks-refresh {self.settings.issuer}")

    async def close(self) -> None:
        tasks = [t for t in (self._background, self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background = self._inflight = None

    async def find(self, kid: str | None) -> VerificationKey | None:
        """The key for `kid`; an unknown kid may trigger one rate-limited shared refresh."""
        key = self._keys.find(kid)
        if key is not None:
            return key
        now = self._clock()
        joining = self._inflight is not None and not self._inflight.done()
        if not joining:
            if (self._last_on_demand is not None
                    and now - self._last_on_demand < self._unknown_kid_interval):
                return None
            self._last_on_demand = now
        await self.refresh()
        return self._keys.find(kid)

    async def refresh(self) -> bool:
        """Fetch now, or join the fetch already running. True when a new set was installed."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch_and_install())
        # shield: a caller that gives up (client disconnect) must not cancel everyone's fetch
        return await asyncio.shield(self._inflight)

    async def _fetch_and_install(self) -> bool:
        self.fetches += 1
        try:
            document, cache_control = await self._fetch()
            keys = parse_jwks(document, source=self.source)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good set
            reason = str(exc) if isinstance(exc, FetchError | JwksError) else type(exc).__name__
            self._failures += 1
            self._metrics.jwks_refresh_failures.labels(issuer=self.settings.issuer).inc()
            log.warning("JWKS refresh failed for issuer %s: %s; keeping the last good set "
                        "(%d keys)", self.settings.issuer, reason, len(self._keys))
            return False
        age = max_age(cache_control)
        self._lifetime = self._clamp(age if age is not None
                                     else float(self.settings.jwks_refresh_seconds))
        if self._failures:
            log.info("JWKS refresh for issuer %s succeeded again after %d failures",
                     self.settings.issuer, self._failures)
        self._failures = 0
        self._keys = keys
        return True

    async def _fetch(self) -> tuple[bytes, str | None]:
        if self.settings.jwks_url is None:
            assert self.settings.jwks_file is not None  # noqa: S101 - checked in __init__
            return await asyncio.to_thread(_read_file, self.settings.jwks_file), None
        assert self._client is not None  # noqa: S101 - checked in __init__
        try:
            async with self._client.stream(
                "GET", self.settings.jwks_url,
                headers={"Accept": "application/jwk-set+json, application/json"},
            ) as response:
                if response.status_code != 200:
                    raise FetchError(f"HTTP status {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                    raise FetchError("document too large")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_JWKS_BYTES:
                        raise FetchError("document too large")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("cache-control")
        except httpx.HTTPError as exc:
            raise FetchError(type(exc).__name__) from exc

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._next_delay())
            await self.refresh()

    def _next_delay(self) -> float:
        if self._failures:
            backoff = self._first_retry * float(2 ** min(self._failures - 1, 16))
            delay = min(backoff, MAX_RETRY_SECONDS, self._lifetime)
        else:
            delay = max(self._min_lifetime, self._lifetime * 0.9)  # a little before expiry
        return delay * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not a secret

    def _clamp(self, seconds: float) -> float:
        return min(MAX_LIFETIME_SECONDS, max(self._min_lifetime, seconds))


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_JWKS_BYTES:
        raise FetchError("document too large")
    return data
