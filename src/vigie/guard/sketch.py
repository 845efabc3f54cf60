"""A bounded distinct counter: an exact set while small, then a HyperLogLog.

The in-memory twin of Redis PFADD/PFCOUNT. Exact up to `EXACT_LIMIT` values (the
common case: a doctor sees tens of patients a day), then at most 4 KiB per window
(2^12 six-bit registers stored one per byte; standard error about 1.6%).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

EXACT_LIMIT = 256
_P = 12
_M = 1 << _P
_ALPHA = 0.7213 / (1 + 1.079 / _M)


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class DistinctCounter:
    __slots__ = ("_cached", "_exact", "_registers")

    def __init__(self) -> None:
        self._exact: set[str] | None = set()
        self._registers: bytearray | None = None
        self._cached: int | None = None

    def add(self, values: Iterable[str]) -> None:
        self._cached = None
        exact = self._exact
        if exact is not None:
            exact.update(values)
            if len(exact) <= EXACT_LIMIT:
                return
            self._registers = bytearray(_M)
            self._exact = None
            values = exact
        registers = self._registers
        if registers is None:  # pragma: no cover - one of the two is always set
            return
        for value in values:
            h = _hash64(value)
            index = h >> (64 - _P)
            rest = (h << _P) & 0xFFFF_FFFF_FFFF_FFFF
            rank = 64 - _P + 1 if rest == 0 else 65 - rest.bit_length()
            if rank > registers[index]:
                registers[index] = rank

    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        if self._cached is not None:
            return self._cached
        registers = self._registers
        if registers is None:  # pragma: no cover
            return 0
        estimate = _ALPHA * _M * _M / sum(2.0 ** -r for r in registers)
        zeros = registers.count(0)
        if estimate <= 2.5 * _M and zeros:
            estimate = _M * math.log(_M / zeros)
        self._cached = round(estimate)
        return self._cached

    def contains(self, value: str) -> bool:
        """Known to be counted; beyond the exact set membership is unknown (False)."""
        return self._exact is not None and value in self._exact

    @property
    def exact(self) -> bool:
        return self._exact is not None
