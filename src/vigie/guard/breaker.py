"""A circuit breaker for the shared state backend: stop waiting on a Redis that is down.

Closed: calls go through. After `threshold` consecutive failures it opens: calls are
skipped (the caller uses its per-replica fallback) for `reset_seconds`; then one probe
is let through (half-open): success closes it, failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(self, threshold: int = 3, reset_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._on_change = on_change
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    @property
    def closed(self) -> bool:
        return self.state is BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether to try the backend now (at most one probe while half-open)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= \
                self.reset_seconds:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.CLOSED
            if self._on_change is not None:
                self._on_change(True)

    def failure(self) -> None:
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN or (
                self.state is BreakerState.CLOSED and self._failures >= self.threshold):
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()
            if self._on_change is not None:
                self._on_change(False)
