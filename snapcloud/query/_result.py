"""What a fleet query returns: aggregated rows or raw series, with the query's own figures."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from snapcloud.timeparse import format_ns

__all__ = ["QueryResult", "QueryStats", "Series", "SeriesSet"]

Cell = str | int | float | None


@dataclass
class QueryStats:
    """Figures of one query: what it planned, read, and how long it took."""

    hosts: int = 0
    hosts_considered: int = 0
    snapshots: int = 0
    objects: int = 0
    bytes_read: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    min_requests: int = 0
    samples_decoded: int = 0
    samples: int = 0
    seconds: float = 0.0
    #: Until the last host was planned (hosts are planned while the first ones are read).
    plan_seconds: float = 0.0
    #: What in the selector matched nothing (a host glob, a label matcher, a metric glob).
    warnings: list[str] = field(default_factory=list)

    @property
    def total_requests(self) -> int:
        """Every request the query made (lists, catalog, segments, objects)."""
        return sum(self.requests.values())

    @property
    def request_ratio(self) -> float:
        """Requests made over the fewest the layout allows (1.0 is optimal)."""
        return self.total_requests / self.min_requests if self.min_requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict, derived figures included."""
        out = asdict(self)
        out["total_requests"] = self.total_requests
        out["request_ratio"] = round(self.request_ratio, 4)
        out["seconds"] = round(self.seconds, 6)
        out["plan_seconds"] = round(self.plan_seconds, 6)
        return out

    def summary(self) -> str:
        """One line for humans."""
        return (
            f"{self.hosts} host(s) of {self.hosts_considered}, {self.objects} objects, "
            f"{self.bytes_read} bytes read, {self.total_requests} requests "
            f"(minimum {self.min_requests}), {self.samples} samples selected of "
            f"{self.samples_decoded} decoded, {self.seconds:.3f} s"
        )


def _cell(value: Any) -> Cell:
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.integer):
        return int(value)
    return value  # type: ignore[no-any-return]


@dataclass
class QueryResult:
    """Aggregated rows: one per group (and time bucket) and metric, columns as named."""

    columns: list[str]
    rows: list[tuple[Cell, ...]]
    stats: QueryStats
    aggs: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    step_ns: int | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Cell]]:
        """Rows as dicts (``None`` where an aggregation has no value)."""
        return [dict(zip(self.columns, (_cell(v) for v in row), strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Cell]:
        """One column's values. Raises ``KeyError`` for an unknown column."""
        i = self.columns.index(name) if name in self.columns else None
        if i is None:
            raise KeyError(name)
        return [_cell(r[i]) for r in self.rows]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` of the rows (``time_ns`` as ``timestamp[ns, UTC]``)."""
        import pyarrow as pa

        arrays = {}
        for i, name in enumerate(self.columns):
            values = [_cell(r[i]) for r in self.rows]
            if name == "time":
                arrays[name] = pa.array(values, type=pa.timestamp("ns", tz="UTC"))
            elif name in self.aggs and name != "count":
                arrays[name] = pa.array(values, type=pa.float64())
            else:
                arrays[name] = pa.array(values)
        return pa.table(arrays)

    def to_json(self) -> dict[str, Any]:
        """``{"columns", "rows" (as records), "stats"}``, times also as ISO-8601."""
        rows = self.records()
        if self.step_ns is not None:
            for r in rows:
                t = r.get("time")
                r["time_iso"] = format_ns(t) if isinstance(t, int) else None
        return {
            "columns": self.columns,
            "rows": rows,
            "aggs": list(self.aggs),
            "group_by": list(self.group_by),
            "step_ns": self.step_ns,
            "stats": self.stats.as_dict(),
            "warnings": list(self.stats.warnings),
        }


@dataclass
class Series:
    """The samples of one metric of one host, in time order."""

    host: str
    metric: str
    kind: str
    unit: str
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.timestamps.size)


@dataclass
class SeriesSet:
    """Raw selected series, sorted by host then metric, with the query's figures."""

    series: list[Series]
    stats: QueryStats

    def __iter__(self) -> Any:
        return iter(self.series)

    def __len__(self) -> int:
        return len(self.series)

    def get(self, host: str, metric: str) -> Series:
        """The series of ``metric`` on ``host``. Raises ``KeyError``."""
        for s in self.series:
            if s.host == host and s.metric == metric:
                return s
        raise KeyError((host, metric))
