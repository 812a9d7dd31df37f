"""What every collector returns and the protocol the recorder samples through.

A collector turns one look at the machine into a flat list of :class:`Sample`
values. It knows nothing of time (the recorder stamps each sample), of
snapshots or of storage.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol, runtime_checkable

__all__ = ["Collector", "Sample", "SampleKind"]

SampleKind = Literal["gauge", "counter"]


class Sample(NamedTuple):
    """One reading: a metric name, its value, gauge or counter, and its unit.

    ``event`` marks one occurrence of something (an XID error): every event
    sample is kept, several in one tick included, where a second plain sample
    of a name in the same tick replaces the first. A named tuple: immutable,
    and built several hundred times a tick, it costs a fifth of a frozen
    dataclass.
    """

    name: str
    value: float
    kind: SampleKind
    unit: str
    event: bool = False


@runtime_checkable
class Collector(Protocol):
    """A source of samples: host-stream labels once, then ``collect`` per tick."""

    name: str

    def labels(self) -> dict[str, str]:
        """Facts about the host stream (models, versions, sizes), as label name -> value."""
        ...

    def collect(self) -> list[Sample]:
        """Read every supported field once; never raises for one field's failure."""
        ...

    def close(self) -> None:
        """Release what the collector holds; safe to call twice."""
        ...
