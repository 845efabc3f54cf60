"""Enumeration detection: each principal's signals, learnt from answered requests.

`observe` feeds one answered request to the principal's `PrincipalSignals` and acts on
what they say: a detection (or several signals adding up to `quarantine_score`)
quarantines the principal; a score at `throttle_score` throttles it (the admission
divides its request rate) and is counted as a detection of its strongest signal, so an
enumeration that is only throttled is visible too; a quarantine that follows on the same
signal is not counted again (one episode, one detection). Signals are kept
per replica, bounded by LRU over `max_principals`, never forgetting a principal at or
above the throttle score.

With Redis the signals are shared: each settlement appends this answer's `Observation`
to the principal's stream and brings back those other replicas appended since this
replica last looked; they are fed first, in order, so every replica's signals see the
whole walk however a load balancer spreads it. Only the replica that served the answer
acts on a detection it causes (the others, fed the same sequence, reach the same
state without acting twice).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Sequence

from vigie.context import Decision, Grant
from vigie.guard.observation import Observation, decode, observe_request
from vigie.guard.quarantines import Quarantines
from vigie.guard.signals import Detection, GuardTuning, PrincipalSignals


class Detector:
    def __init__(self, tuning: GuardTuning, quarantines: Quarantines, offset: int = 0) -> None:
        self.tuning = tuning
        self.quarantines = quarantines
        self.offset = offset  # keyed shift of numeric ids in shared observations
        self.observation_ttl_ms = int(tuning.baseline_window_s * 2000)
        self._signals: OrderedDict[tuple[str, str], PrincipalSignals] = OrderedDict()
        self._seen: dict[tuple[str, str], str] = {}  # last shared observation fed
        self._throttled: dict[tuple[str, str], str] = {}  # -> the signal counted

    def score(self, client: str, pseudonym: str) -> float:
        found = self._signals.get((client, pseudonym))
        return found.score() if found is not None else 0.0

    def established(self, client: str, pseudonym: str) -> bool:
        """A clean history long enough to be spared the client alert's slow-down (an
        unknown or forgotten principal is not: it counts as fresh)."""
        found = self._signals.get((client, pseudonym))
        return found is not None and found.established(time.time())

    def forget(self, client: str, pseudonym: str) -> None:
        self._signals.pop((client, pseudonym), None)
        self._seen.pop((client, pseudonym), None)
        self._throttled.pop((client, pseudonym), None)

    def observation(self, grant: Grant, decision: Decision,
                    max_page: int | None) -> Observation:
        return observe_request(time.time(), grant.route.name, grant.params, grant.query,
                               decision.status, decision.records, decision.withheld, max_page,
                               self.tuning.broad_name_length, self.offset)

    def seen(self, client: str, pseudonym: str) -> str:
        return self._seen.get((client, pseudonym), "")

    async def observe(self, client: str, pseudonym: str, grant: Grant, decision: Decision,
                      own: Observation, shared: Sequence[tuple[str, str]] = ()) -> None:
        """Feed other replicas' observations (`shared` but its last, this one), then own."""
        t = self.tuning
        q = self.quarantines
        key = (client, pseudonym)
        signals = self._signals_for(client, pseudonym)
        for ident, text in shared[:-1]:
            with contextlib.suppress(ValueError):  # a malformed entry teaches nothing
                signals.feed(decode(text, int(ident.partition("-")[0]) / 1000.0))
        if shared and shared[-1][0]:
            self._seen[key] = shared[-1][0]
        before = signals.score()
        detections = signals.feed(own)
        score = signals.score()
        if not detections and score >= t.quarantine_score and len(signals.strengths()) > 1:
            detections = [Detection("combined", score)]  # several signals, none alone at 1
        if detections or score >= t.throttle_score:
            alerted = await q.suspect(client, pseudonym, grant.mode)
            if alerted and not detections:
                detections = [Detection("coordinated", score)]
        if detections:
            counted = self._throttled.get(key, "")
            q.quarantine(client, pseudonym, detections[0].signal, grant.mode,
                         "enumeration_detected", [d.signal for d in detections[1:]],
                         counted=counted)
            decision.anomaly_score = 1.0
            return
        decision.anomaly_score = max(decision.anomaly_score, score)
        if score >= t.throttle_score and key not in self._throttled:
            strongest = max(signals.strengths().items(), key=lambda item: item[1])[0]
            self._throttled[key] = strongest
            if before < t.throttle_score:  # else another replica's answer crossed it
                q.detected(client, strongest)
                q.emit("anomaly_throttled", client, pseudonym, strongest, score, "throttle",
                       grant.mode)
        elif score < t.throttle_score:
            self._throttled.pop(key, None)
        q.set_score(client, pseudonym, score)

    def _signals_for(self, client: str, pseudonym: str) -> PrincipalSignals:
        key = (client, pseudonym)
        found = self._signals.get(key)
        if found is not None:
            self._signals.move_to_end(key)
            return found
        found = self._signals[key] = PrincipalSignals(self.tuning)
        if len(self._signals) > self.tuning.max_principals:
            for _ in range(min(32, len(self._signals) - 1)):
                oldest, candidate = next(iter(self._signals.items()))
                if candidate.score() >= self.tuning.throttle_score:
                    self._signals.move_to_end(oldest)  # never forget a penalized principal
                    continue
                del self._signals[oldest]
                self._seen.pop(oldest, None)
                self.quarantines.drop_score(*oldest)
                break
        return found
