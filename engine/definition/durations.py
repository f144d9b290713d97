"""Durations as definitions write them (``500ms``, ``30s``, ``5m``, ``2h``, ``7d``) and show them."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``500ms``, ``30s``, ``5m``, ``2h``, ``7d``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a duration: use seconds or e.g. 500ms, 30s, 5m, 2h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def human_duration(seconds: float) -> str:
    """``2592000`` -> ``30d``, ``5400`` -> ``1h30m``, ``0.5`` -> ``500ms``, ``1.5`` -> ``1.5s``."""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    whole, frac = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or frac:
        parts.append(f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)
