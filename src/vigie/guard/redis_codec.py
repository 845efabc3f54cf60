"""The Redis store's wire format: key names, script arguments and replies, as values.

`RedisCodec` turns a `Check` into the arguments of an admission call of `lua.GUARD`, a
`Settlement` into its settlement calls (chunked: Lua `unpack()` has a stack limit), and
a script reply into a `Verdict`. It does no I/O: `RedisStore` sends what it builds.
Key layout and script arguments are described in `guard.redis_store` and `guard.lua`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from vigie.guard.limits import Budget
from vigie.guard.quarantine_index import index_field
from vigie.guard.reservation import Settlement
from vigie.guard.sketch import EXACT_LIMIT
from vigie.guard.store import Check, Quarantine, Verdict, principal_tag

CHUNK = 500  # patients per script call: Lua unpack() has a stack limit
NUMKEYS = 7


class RedisCodec:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.offset = 0.0  # Redis clock minus ours, for window names and the index

    def key(self, tag: str, part: str) -> str:
        return f"{self.prefix}{{{tag}}}:{part}"

    @property
    def index(self) -> str:
        return f"{self.prefix}quarantines"

    def window(self, budget: Budget) -> tuple[int, float]:
        now = time.time() + self.offset
        window = int(now // budget.patients_window_s) if budget.patients_window_s else 0
        return window, (window + 1) * budget.patients_window_s * 1000.0

    def keys(self, tag: str, window: int) -> tuple[str, ...]:
        return (self.key(tag, "q"), self.key(tag, "req"), self.key(tag, "rec"),
                self.key(tag, f"pat:{window}"), self.key(tag, f"pats:{window}"),
                self.key(tag, "lease"), self.key(tag, "obs"))

    def admit_call(self, check: Check) -> tuple[str, ...]:
        budget = check.budget
        window, window_end_ms = self.window(budget)
        held = check.reservation
        args = ("a", "1" if check.principal is not None else "0",
                repr(budget.request_interval_ms), repr(budget.request_tolerance_ms),
                repr(check.penalty), repr(budget.records_interval_ms),
                repr(budget.records_window_ms), str(budget.patients_limit), repr(window_end_ms),
                str(EXACT_LIMIT), str(2 * budget.patients_window_s), str(budget.concurrency),
                held.member if held else "", str(held.lease_ms) if held else "0",
                held.patient if held else "")
        return (*self.keys(check.tag, window), *args)

    def settle_calls(self, s: Settlement) -> list[tuple[str, ...]]:
        budget = s.budget
        window, _ = self.window(budget)
        keys = self.keys(s.tag, window)
        refs = sorted(set(s.patients)) if budget.patients_limit else []
        interval = repr(budget.records_interval_ms)
        ttl = str(2 * budget.patients_window_s)
        calls = [(*keys, "s", s.lease, interval, str(max(0, s.records)), ttl, str(EXACT_LIMIT),
                  s.observation, s.seen, str(s.observation_ttl_ms), *refs[:CHUNK])]
        for start in range(CHUNK, len(refs), CHUNK):
            calls.append((*keys, "s", "", interval, "0", ttl, str(EXACT_LIMIT), "", "", "0",
                          *refs[start:start + CHUNK]))
        return calls

    def verdict(self, check: Check, reply: list[Any]) -> Verdict:
        code = int(reply[0])
        if code == 1 and check.principal is not None:
            meta = orjson.loads(reply[2]) if reply[2] else {}
            client, subject = check.principal
            found = Quarantine(client, subject, time.time() + int(reply[1]) / 1000.0,
                               str(meta.get("reason", "unknown")),
                               str(meta.get("mode", "enforce")))
            return Verdict(quarantine=found, retry_after_s=int(reply[1]) / 1000.0)
        if code == 2:
            return Verdict(refused=text(reply[2]), retry_after_s=int(reply[1]) / 1000.0,
                           remaining=0, reset_s=int(reply[3]) / 1000.0, shared=True)
        lease = check.reservation.member if check.reservation is not None else ""
        return Verdict(remaining=int(reply[1]), reset_s=int(reply[2]) / 1000.0, lease=lease,
                       shared=True)

    def queue_quarantine(self, pipe: Any, q: Quarantine) -> None:
        """The quarantine key (what admissions check) and its entry in the admin index."""
        ttl_ms = max(1, math.ceil((q.until - time.time()) * 1000))
        value = orjson.dumps({"reason": q.reason, "mode": q.mode})
        pipe.set(self.key(principal_tag(q.client, q.subject), "q"), value, px=ttl_ms)
        pipe.hset(self.index, index_field(q.client, q.subject),
                  orjson.dumps({"until": q.until + self.offset, "reason": q.reason,
                                "mode": q.mode}))
        pipe.pexpire(self.index, ttl_ms, nx=True)
        pipe.pexpire(self.index, ttl_ms, gt=True)


def observations(reply: Any) -> list[tuple[str, str]]:
    """{0, id1, obs1, ...} -> [(id1, obs1), ...]."""
    return [(text(reply[index]), text(reply[index + 1]))
            for index in range(1, len(reply) - 1, 2)]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
