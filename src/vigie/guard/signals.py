"""Enumeration signals for one principal and the anomaly score they add up to.

Each signal has a strength in [0, 1]; the score is their noisy-or
`1 - prod(1 - s)`, also in [0, 1]. A signal whose strength reaches 1 is a detection:
it is reported once and its evidence is consumed (so one run is one detection).
Several signals whose noisy-or reaches `quarantine_score` without any of them reaching 1
make a `combined` detection (decided by the Guard).

- sequential_ids: numeric path parameters walked in one direction with small steps
  (42, 43, 44, ... or 900, 898, 896, ... or 10, 12, 13, 17, ...: at most `max_stride`
  each, constant or not, so skipping ids or adding jitter does not hide a walk);
  strength = run length / `sequential_run`.
- not_found_ratio: the share of ID lookups answered 404/403 (or fully withheld) among
  the last `lookup_window`; strength = ratio / `not_found_ratio`, scaled down while
  fewer than `lookup_min` lookups were seen.
- deep_paging: a search walked page after page; strength = increasing-page run length /
  `paging_run` (`paging_run_at_max` when the page size is the route's maximum).
- broad_search: searches that filter on almost nothing (a name of at most
  `broad_name_length` characters, a wildcard, or paging only) among the last
  `search_window`; strength = count / `broad_searches`.
- baseline: records disclosed in the current `baseline_window_s` against the principal's
  learned baseline (capped EWMA over past windows, never below `baseline_floor`, growing
  at most `baseline_growth` per window, not learning from windows that were anomalous,
  so a scraper cannot raise its own baseline); strength rises linearly from
  `baseline_ratio_start` x baseline to 1 at `baseline_ratio_detect` x baseline.

Nothing here does I/O or reads the clock: callers pass `now` (seconds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from vigie.guard.observation import Observation, observe_request

SIGNALS = ("sequential_ids", "not_found_ratio", "deep_paging", "broad_search", "baseline")


@dataclass(frozen=True, slots=True)
class GuardTuning:
    """Thresholds of the guard (see docs/guard.md for how to tune them)."""

    sequential_run: int = 20
    max_stride: int = 10
    lookup_window: int = 50
    lookup_min: int = 20
    not_found_ratio: float = 0.5
    paging_run: int = 20
    paging_run_at_max: int = 10
    search_window: int = 50
    broad_searches: int = 10
    broad_name_length: int = 2
    baseline_window_s: int = 300
    baseline_floor: float = 50.0
    baseline_alpha: float = 0.2
    baseline_growth: float = 0.25
    baseline_ratio_start: float = 4.0
    baseline_ratio_detect: float = 12.0
    throttle_score: float = 0.5  # at or above: requests slowed by penalty_factor
    quarantine_score: float = 0.95  # several signals adding up to this: "combined" detection
    penalty_factor: float = 4.0
    max_principals: int = 50_000
    # Client alert: this many principals of one client anomalous within the window means
    # one operation behind several accounts (the breach pattern): the whole client is slowed
    # and each of its principals is quarantined at the throttle score.
    coordinated_principals: int = 3
    coordinated_window_s: float = 600.0
    # ... except established principals: seen for at least this long and never at the
    # throttle score (a doctor with a clean history keeps working through the client
    # alert; the fresh accounts of a many-accounts extraction are slowed and quarantined).
    established_after_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Detection:
    signal: str
    strength: float


@dataclass(slots=True)
class _Run:
    last: int
    stride: int = 0
    length: int = 1


class PrincipalSignals:
    """The evidence kept for one principal; bounded whatever the traffic."""

    __slots__ = ("_baseline", "_first", "_lookups", "_pages", "_peak", "_runs", "_searches",
                 "_strength", "_tuning", "_window_count", "_window_index", "_window_peak")

    def __init__(self, tuning: GuardTuning) -> None:
        self._tuning = tuning
        self._runs: dict[tuple[str, str], _Run] = {}
        self._lookups: deque[bool] = deque(maxlen=tuning.lookup_window)
        self._pages: dict[str, _Run] = {}
        self._searches: deque[bool] = deque(maxlen=tuning.search_window)
        self._baseline = tuning.baseline_floor
        self._window_index = -1
        self._window_count = 0
        self._window_peak = 0.0
        self._strength: dict[str, float] = {}
        self._first = float("inf")  # the earliest answer seen (seconds)
        self._peak = 0.0  # the highest score ever reached (1.0 after a detection)

    @property
    def baseline(self) -> float:
        return self._baseline

    def established(self, now: float) -> bool:
        """Seen for `established_after_s` at least and never anomalous: a clean history."""
        t = self._tuning
        return self._peak < t.throttle_score and now - self._first >= t.established_after_s

    def score(self) -> float:
        remaining = 1.0
        for strength in self._strength.values():
            remaining *= 1.0 - strength
        return 1.0 - remaining

    def strengths(self) -> Mapping[str, float]:
        return self._strength

    def observe(self, now: float, route: str, params: Mapping[str, str], query: str,
                status: int, records: int, withheld: int,
                max_page_size: int | None = None) -> list[Detection]:
        """Update the evidence with one answered request; return the detections it caused.

        `max_page_size` is the route's own cap on the page size, when it declares one.
        """
        return self.feed(observe_request(now, route, params, query, status, records,
                                         withheld, max_page_size,
                                         self._tuning.broad_name_length))

    def feed(self, seen: Observation) -> list[Detection]:
        """The same, from an observation (this replica's, or another's through Redis)."""
        detections: list[Detection] = []
        if seen.lookup:
            self._observe_lookup(seen, detections)
        elif seen.search:
            self._observe_search(seen, detections)
        self._observe_volume(seen.at, seen.records, detections)
        self._first = min(self._first, seen.at)
        self._peak = max(self._peak, 1.0 if detections else self.score())
        return detections

    def _raise(self, signal: str, strength: float, detections: list[Detection]) -> bool:
        if strength >= 1.0:
            detections.append(Detection(signal, 1.0))
            self._strength.pop(signal, None)
            return True
        if strength > 0.0:
            self._strength[signal] = strength
        else:
            self._strength.pop(signal, None)
        return False

    def _observe_lookup(self, seen: Observation, detections: list[Detection]) -> None:
        t = self._tuning
        longest = 0
        route = seen.route
        for name, number in seen.numbers:
            run = self._runs.get((route, name))
            if run is None:
                if len(self._runs) < 64:
                    self._runs[(route, name)] = _Run(number)
                continue
            step = number - run.last
            if step == 0:
                continue
            if 0 < abs(step) <= t.max_stride:
                direction = 1 if step > 0 else -1  # `stride` keeps the walk's direction
                if direction == run.stride:
                    run.length += 1
                else:
                    run.stride, run.length = direction, 2
            else:
                run.stride, run.length = 0, 1
            run.last = number
            if run.length >= t.sequential_run:
                run.length = 1
                longest = t.sequential_run
            else:
                longest = max(longest, run.length)
        self._raise("sequential_ids", longest / t.sequential_run if longest > 1 else 0.0,
                    detections)

        self._lookups.append(seen.missed)
        count = len(self._lookups)
        ratio = sum(self._lookups) / count
        strength = min(1.0, ratio / t.not_found_ratio) * min(1.0, count / t.lookup_min)
        if self._raise("not_found_ratio", strength, detections):
            self._lookups.clear()

    def _observe_search(self, seen: Observation, detections: list[Detection]) -> None:
        t = self._tuning
        route = seen.route
        if seen.page is not None:
            number = seen.page
            run = self._pages.get(route)
            if run is None:
                if len(self._pages) < 64:
                    self._pages[route] = _Run(number)
                run_length = 1
            else:
                run.length = run.length + 1 if number > run.last else 1
                run.last = number
                run_length = run.length
            needed = t.paging_run_at_max if seen.at_max else t.paging_run
            strength = run_length / needed if run_length > 1 else 0.0
            if self._raise("deep_paging", min(1.0, strength), detections) and run:
                run.length = 1
        self._searches.append(seen.broad)
        strength = sum(self._searches) / t.broad_searches
        if self._raise("broad_search", min(1.0, strength), detections):
            self._searches.clear()

    def _observe_volume(self, now: float, records: int, detections: list[Detection]) -> None:
        t = self._tuning
        index = int(now // t.baseline_window_s)
        if index != self._window_index:
            if self._window_index >= 0 and self._window_peak < t.throttle_score:
                self._learn(self._window_count)
            self._window_index, self._window_count, self._window_peak = index, 0, 0.0
        self._window_count += records
        ratio = self._window_count / max(self._baseline, t.baseline_floor)
        span = t.baseline_ratio_detect - t.baseline_ratio_start
        strength = min(1.0, max(0.0, (ratio - t.baseline_ratio_start) / span))
        self._window_peak = max(self._window_peak, strength)
        if self._raise("baseline", strength, detections):
            self._window_count = 0

    def _learn(self, count: int) -> None:
        t = self._tuning
        smoothed = (1.0 - t.baseline_alpha) * self._baseline + t.baseline_alpha * count
        capped = min(smoothed, self._baseline * (1.0 + t.baseline_growth))
        self._baseline = max(t.baseline_floor, capped)
