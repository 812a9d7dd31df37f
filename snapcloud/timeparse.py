"""Parse the instants and durations users type: ISO-8601, epoch ns, ``30m``/``2h``/``7d``."""

from __future__ import annotations

import datetime as dt
import math
import re

from snapcloud._regex import compile_linear
from snapcloud.errors import ValidationError

__all__ = ["format_duration", "format_ns", "parse_duration", "parse_instant", "seconds_ns"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DURATION = compile_linear(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d|w)")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
    "w": 7 * 86400 * 10**9,
}
_FRACTION = re.compile(r"\.(\d+)")
_NS_LIMIT = 2**63  # int64: every timestamp, window and step is one


def seconds_ns(seconds: float, *, field: str = "seconds") -> int:
    """Nanoseconds (at least 1) from a positive, finite number of seconds.

    Raises ``ValidationError`` naming ``field`` for NaN, infinity, zero or less, and
    for more nanoseconds than an int64 holds (292 years).
    """
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ValidationError(
            f"{field}: {seconds!r} is not a positive, finite number of seconds", field=field
        )
    if seconds * 1e9 >= _NS_LIMIT:
        raise ValidationError(
            f"{field}: {seconds!r} seconds is over the limit of {_NS_LIMIT // 10**9} s",
            field=field,
        )
    return max(1, round(seconds * 1e9))


def parse_instant(text: str, *, field: str = "time") -> int:
    """Epoch nanoseconds from ISO-8601 with ``Z`` or an offset, or from integer epoch ns.

    Raises ``ValidationError`` naming ``field`` for anything else (a naive
    ISO time is refused: it does not say which zone it is in).
    """
    s = text.strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    frac_ns = 0
    m = _FRACTION.search(s)
    if m:
        digits = m.group(1)
        if len(digits) > 9:
            raise ValidationError(
                f"{field}: {text!r} has more than nanosecond precision", field=field
            )
        frac_ns = int(digits.ljust(9, "0"))
        s = s[: m.start()] + s[m.end() :]
    try:
        when = dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{field}: cannot parse {text!r}; use ISO-8601 with Z or an offset "
            "(2026-01-01T00:00:00Z) or integer epoch nanoseconds",
            field=field,
        ) from None
    if when.tzinfo is None:
        raise ValidationError(
            f"{field}: {text!r} has no zone; add Z or an offset such as +00:00", field=field
        )
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + frac_ns


def parse_duration(text: str, *, field: str = "duration") -> int:
    """Nanoseconds from ``30s``, ``15m``, ``2h``, ``7d``, ``1h30m``. Raises ``ValidationError``."""
    s = text.strip()
    pos, total = 0, 0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += int(float(m.group(1)) * _UNIT_NS[m.group(2)])
        pos = m.end()
    if pos != len(s) or not s or total <= 0:
        raise ValidationError(
            f"{field}: cannot parse {text!r}; use a number and a unit, e.g. 30m, 2h, 7d",
            field=field,
        )
    return total


def format_duration(ns: int) -> str:
    """``ns`` nanoseconds as ``parse_duration`` reads it back: ``1d``, ``1h30m``, ``0s``."""
    if ns <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms", "us", "ns"):
        count, ns = divmod(ns, _UNIT_NS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_ns(ns: int) -> str:
    """ISO-8601 UTC with nanoseconds trimmed of trailing zeros."""
    secs, frac = divmod(ns, 10**9)
    try:
        base = (_EPOCH + dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    except OverflowError:
        return str(ns)
    return f"{base}.{frac:09d}".rstrip("0").rstrip(".") + "Z"
