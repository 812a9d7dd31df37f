"""Progress of long library calls, for whoever shows it (the CLI draws a bar).

The library never prints: functions that can run for minutes (import, query, export,
verify, compact) take an optional ``progress`` callback and call it with a
``ProgressUpdate`` as work gets done, from the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProgressCallback", "ProgressUpdate"]


@dataclass(frozen=True)
class ProgressUpdate:
    """How far a call has got: ``done`` of ``total`` units (``None``: not known yet)."""

    #: What is counted: "objects", "snapshots", "windows" or "hosts".
    unit: str
    done: int
    total: int | None
    #: Bytes read or written so far.
    bytes: int = 0
    #: What is being worked on now (a host), for the display.
    label: str = ""


ProgressCallback = Callable[[ProgressUpdate], None]
