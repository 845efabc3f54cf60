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

What a replica keeps about a principal is one `PrincipalState` record (its signals, the
last shared observation it fed, the signal it counted when it throttled); the anomaly
gauge's per-client scores live in `guard.quarantines`, which also keeps them for
quarantined principals whose evidence was forgotten.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from vigie.context import Decision, Grant
from vigie.guard.observation import Observation, decode, observe_request
from vigie.guard.quarantines import Quarantines
from vigie.guard.signals import Detection, GuardTuning, PrincipalSignals


@dataclass(slots=True)
class PrincipalState:
    """Everything this replica keeps about one principal's enumeration evidence."""

    signals: PrincipalSignals
    seen: str = ""  # the last shared observation fed (a stream id)
    throttled: str = ""  # the signal counted as a detection when it throttled; "" none


class Detector:
    def __init__(self, tuning: GuardTuning, quarantines: Quarantines, offset: int = 0) -> None:
        self.tuning = tuning
        self.quarantines = quarantines
        self.offset = offset  # keyed shift of numeric ids in shared observations
        self.observation_ttl_ms = int(tuning.baseline_window_s * 2000)
        # One record per principal, LRU over `max_principals`.
        self._principals: OrderedDict[tuple[str, str], PrincipalState] = OrderedDict()

    def __len__(self) -> int:
        """Principals whose evidence this replica keeps."""
        return len(self._principals)

    def score(self, client: str, pseudonym: str) -> float:
        found = self._principals.get((client, pseudonym))
        return found.signals.score() if found is not None else 0.0

    def established(self, client: str, pseudonym: str) -> bool:
        """A clean history long enough to be spared the client alert's slow-down (an
        unknown or forgotten principal is not: it counts as fresh)."""
        found = self._principals.get((client, pseudonym))
        return found is not None and found.signals.established(time.time())

    def forget(self, client: str, pseudonym: str) -> None:
        self._principals.pop((client, pseudonym), None)

    def observation(self, grant: Grant, decision: Decision, max_page: int | None,
                    size_param: str | None = None) -> Observation:
        return observe_request(time.time(), grant.route.name, grant.params, grant.query,
                               decision.status, decision.records, decision.withheld, max_page,
                               self.tuning.broad_name_length, self.offset, size_param)

    def seen(self, client: str, pseudonym: str) -> str:
        found = self._principals.get((client, pseudonym))
        return found.seen if found is not None else ""

    async def observe(self, client: str, pseudonym: str, grant: Grant, decision: Decision,
                      own: Observation, shared: Sequence[tuple[str, str]] = ()) -> None:
        """Feed other replicas' observations (`shared` but its last, this one), then own."""
        t = self.tuning
        q = self.quarantines
        state = self._state_for(client, pseudonym)
        signals = state.signals
        for ident, text in shared[:-1]:
            with contextlib.suppress(ValueError):  # a malformed entry teaches nothing
                signals.feed(decode(text, int(ident.partition("-")[0]) / 1000.0))
        if shared and shared[-1][0]:
            state.seen = shared[-1][0]
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
            q.quarantine(client, pseudonym, detections[0].signal, grant.mode,
                         "enumeration_detected", [d.signal for d in detections[1:]],
                         counted=state.throttled)
            decision.anomaly_score = 1.0
            return
        decision.anomaly_score = max(decision.anomaly_score, score)
        if score >= t.throttle_score and not state.throttled:
            strongest = max(signals.strengths().items(), key=lambda item: item[1])[0]
            state.throttled = strongest
            if before < t.throttle_score:  # else another replica's answer crossed it
                q.detected(client, strongest)
                q.emit("anomaly_throttled", client, pseudonym, strongest, score, "throttle",
                       grant.mode)
        elif score < t.throttle_score:
            state.throttled = ""
        q.set_score(client, pseudonym, score)

    def _state_for(self, client: str, pseudonym: str) -> PrincipalState:
        key = (client, pseudonym)
        principals = self._principals
        found = principals.get(key)
        if found is not None:
            principals.move_to_end(key)
            return found
        found = principals[key] = PrincipalState(PrincipalSignals(self.tuning))
        if len(principals) > self.tuning.max_principals:
            for _ in range(min(32, len(principals) - 1)):
                oldest, candidate = next(iter(principals.items()))
                if candidate.signals.score() >= self.tuning.throttle_score:
                    principals.move_to_end(oldest)  # never forget a penalized principal
                    continue
                del principals[oldest]
                self.quarantines.drop_score(*oldest)
                break
        return found
