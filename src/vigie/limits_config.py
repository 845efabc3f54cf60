"""The `limits` mapping, as the configuration and the policies write it: rates (short form
`600/minute` or `{rate: 600/minute, burst: 60}`), budgets, enumeration and concurrency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigie import yamlsrc
from vigie.rates import Limits, Rate

LIMIT_KEYS = {"requests", "records", "distinct_patients", "enumeration", "concurrency"}
_REQUESTS_KEYS = ("rate", "burst")


def parse_limits(raw: Any, path: yamlsrc.Path,
                 error: Callable[[yamlsrc.Path, str], Exception]) -> Limits:
    """Parse a `limits` mapping (config or policy); keys left out stay None."""
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        raise error(path, "must be a mapping")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in LIMIT_KEYS:
            raise error((*path, key), "unknown key")
        if key == "enumeration":
            if not isinstance(value, bool):
                raise error((*path, key), "must be true or false")
            values[key] = value
        elif key == "concurrency":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise error((*path, key), "must be a positive integer (requests in flight)")
            values[key] = value
        elif key == "requests" and isinstance(value, dict):
            values[key] = _rate_with_burst(value, (*path, key), error)
        else:
            try:
                values[key] = Rate.parse(value)
            except ValueError as exc:
                raise error((*path, key), str(exc)) from exc
    return Limits(**values)


def _rate_with_burst(raw: dict[Any, Any], path: yamlsrc.Path,
                     error: Callable[[yamlsrc.Path, str], Exception]) -> Rate:
    """`{rate: 600/minute, burst: 60}`: the long form of `requests`."""
    for key in raw:
        if key not in _REQUESTS_KEYS:
            raise error((*path, key), "unknown key (allowed: rate, burst)")
    if "rate" not in raw:
        raise error(path, "missing required key 'rate'")
    try:
        rate = Rate.parse(raw["rate"])
    except ValueError as exc:
        raise error((*path, "rate"), str(exc)) from exc
    burst = raw.get("burst")
    if burst is None:
        return rate
    if not isinstance(burst, int) or isinstance(burst, bool) or not 1 <= burst <= rate.count:
        raise error((*path, "burst"), f"must be an integer from 1 to the rate's count "
                                      f"({rate.count})")
    return Rate(rate.count, rate.period_seconds, burst)
