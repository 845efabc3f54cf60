"""One issuer's JWKS cache: fetched at start, refreshed in the background, never failing open.

The failure modes it avoids: a proxy that cannot start while the IdP is down
(start-up never raises; keys arrive when the IdP answers, or from the last
good copy on disk), a proxy that drops every key on one bad fetch (the last
good set stays in use), a set trusted forever while the IdP is unreachable
(beyond `jwks_max_stale_seconds` since the last good fetch it is no longer
trusted), a withdrawn key trusted for long (the refresh interval never exceeds
`jwks_refresh_seconds`, whatever Cache-Control says), and a JWKS endpoint
hammered by tokens with random `kid`s (on-demand refreshes are rate limited per
issuer and concurrent ones share one fetch).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable

import httpx

from vigie.auth import lastgood
from vigie.auth.fetch import FetchError, fetch_jwks
from vigie.auth.keys import JwksError, KeySet, VerificationKey, parse_jwks
from vigie.issuer_settings import IssuerSettings
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.auth.jwks")

MIN_LIFETIME_SECONDS = 30.0
MAX_LIFETIME_SECONDS = 24 * 3600.0
UNKNOWN_KID_REFRESH_INTERVAL_SECONDS = 30.0
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


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

    `clock` (wall time, seconds) rates on-demand refreshes and dates the set in use
    (staleness, the last good copy); background timing uses the event loop, so tests
    can move the clock without waiting.
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
        if settings.jwks_file is None and client is None:
            raise ValueError("an HTTP client is required for jwks_url and discovery_url")
        self.settings = settings
        self._metrics = metrics
        self._client = client
        self._clock = clock
        self._unknown_kid_interval = unknown_kid_interval
        self._first_retry = first_retry
        self._min_lifetime = min(min_lifetime, float(settings.jwks_refresh_seconds))
        self._keys = KeySet()
        self._fetched_at: float | None = None  # wall time of the set in use
        self._lifetime = self._clamp(float(settings.jwks_refresh_seconds))
        self._last_on_demand: float | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._failures = 0
        self._background: asyncio.Task[None] | None = None
        self.fetches = 0  # attempts, for tests and debugging
        metrics.jwks_trusted.labels(issuer=settings.issuer).set_function(
            lambda: float(self.usable()))

    @property
    def keys(self) -> KeySet:
        """The last good set, trusted or not (see `trusted`)."""
        return self._keys

    def stale(self) -> bool:
        return (self._fetched_at is not None and self._clock() - self._fetched_at
                > self.settings.jwks_max_stale_seconds)

    def trusted(self) -> KeySet:
        """The set tokens may be verified with: empty once older than jwks_max_stale_seconds."""
        return KeySet() if self.stale() else self._keys

    def usable(self) -> bool:
        return len(self.trusted()) > 0

    def why_no_key(self) -> str:
        """The refusal reason when `find` found nothing: no_keys, keys_stale or unknown_kid."""
        if self._fetched_at is None:
            return "no_keys"
        return "keys_stale" if self.stale() else "unknown_kid"

    @property
    def lifetime(self) -> float:
        """Seconds the current set stays fresh (Cache-Control max-age, clamped)."""
        return self._lifetime

    @property
    def source(self) -> str:
        s = self.settings
        return s.jwks_url or s.discovery_url or str(s.jwks_file)

    async def start(self) -> None:
        """Load the last good copy, fetch once (never raises), then refresh in the background."""
        await self._load_copy()
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
        key = self.trusted().find(kid)
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
        return self.trusted().find(kid)

    async def refresh(self) -> bool:
        """Fetch now, or join the fetch already running. True when a new set was installed."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch_and_install())
        # shield: a caller that gives up (client disconnect) must not cancel everyone's fetch
        return await asyncio.shield(self._inflight)

    async def _fetch_and_install(self) -> bool:
        self.fetches += 1
        try:
            document, cache_control = await fetch_jwks(self.settings, self._client)
            keys = parse_jwks(document, source=self.source)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good set
            reason = str(exc) if isinstance(exc, FetchError | JwksError) else type(exc).__name__
            self._failures += 1
            self._metrics.jwks_refresh_failures.labels(issuer=self.settings.issuer).inc()
            log.warning("JWKS refresh failed for issuer %s: %s; keeping the last good set "
                        "(%d keys%s)", self.settings.issuer, reason, len(self._keys),
                        ", no longer trusted: older than jwks_max_stale_seconds"
                        if self.stale() else "")
            return False
        age = max_age(cache_control)
        self._lifetime = self._clamp(age if age is not None
                                     else float(self.settings.jwks_refresh_seconds))
        if self._failures:
            log.info("JWKS refresh for issuer %s succeeded again after %d failures",
                     self.settings.issuer, self._failures)
        self._failures = 0
        fetched_at = self._clock()
        self._install(keys, fetched_at)
        if self.settings.jwks_cache_file is not None:
            await asyncio.to_thread(lastgood.save, self.settings.jwks_cache_file,
                                    self.settings.issuer, fetched_at, document)
        return True

    def _install(self, keys: KeySet, fetched_at: float) -> None:
        self._keys, self._fetched_at = keys, fetched_at
        self._metrics.jwks_last_success.labels(issuer=self.settings.issuer).set(fetched_at)

    async def _load_copy(self) -> None:
        path = self.settings.jwks_cache_file
        if path is None:
            return
        copy = await asyncio.to_thread(lastgood.load, path, self.settings.issuer)
        if copy is None:
            return
        fetched_at, document = copy
        age = self._clock() - fetched_at
        if age > self.settings.jwks_max_stale_seconds:
            log.warning("the last good JWKS copy for issuer %s is older than "
                        "jwks_max_stale_seconds; not used", self.settings.issuer)
            return
        try:
            keys = parse_jwks(document, source=str(path))
        except JwksError as exc:
            log.warning("the last good JWKS copy for issuer %s is unusable: %s",
                        self.settings.issuer, exc)
            return
        self._install(keys, fetched_at)
        log.info("issuer %s: %d keys from the last good copy (%.0f s old) until the IdP answers",
                 self.settings.issuer, len(keys), age)

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
        """Cache-Control may shorten the configured interval (down to the minimum), never
        lengthen it: a key the IdP withdrew is trusted at most `jwks_refresh_seconds`."""
        ceiling = min(MAX_LIFETIME_SECONDS, float(self.settings.jwks_refresh_seconds))
        return min(ceiling, max(self._min_lifetime, seconds))
