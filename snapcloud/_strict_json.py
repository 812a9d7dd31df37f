"""JSON that every parser accepts: no ``NaN``/``Infinity`` literals.

``json.dumps`` writes non-finite floats as ``NaN``, ``Infinity`` and ``-Infinity``,
which ``jq``, ``JSON.parse`` and strict readers refuse. snapcloud writes them as the
strings ``"NaN"``, ``"+Inf"`` and ``"-Inf"`` (as Prometheus writes sample values), and
every finite float as a JSON number that reads back to the same float.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

__all__ = ["finite", "strict_dumps"]


def _word(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (in lists, tuples, dicts) made a string."""
    if isinstance(value, bool | str | None):
        return value
    if isinstance(value, numbers.Integral):  # numpy's integer types too
        return int(value)
    if isinstance(value, numbers.Real):  # and its floating types
        value = float(value)
        return value if math.isfinite(value) else _word(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def strict_dumps(value: Any) -> str:
    """Compact strict JSON of ``value`` (``str()`` of what JSON has no type for)."""
    return json.dumps(finite(value), separators=(",", ":"), allow_nan=False, default=str)
