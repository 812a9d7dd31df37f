"""Selected series over time as a PNG: one panel per metric field, one line per host or GPU.

matplotlib is an optional extra (``snapcloud[plot]``), imported only here and
only when a plot is drawn; the object-oriented API (``Figure`` + Agg canvas) is
used so no global pyplot state or GUI backend is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapcloud.errors import SnapcloudError, ValidationError
from snapcloud.query._result import QueryResult, Series
from snapcloud.query._selectors import gpu_index, metric_field

__all__ = ["plot_series", "series_from_result"]

_MAX_PANELS = 12
_MAX_LEGEND = 16
_BINARY = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_DECIMAL_UNITS = {"mW": ("W", 1e-3), "mJ": ("kJ", 1e-6), "ms": ("s", 1e-3)}


def _scale(unit: str, peak: float) -> tuple[str, float]:
    """A readable unit for values up to ``peak``: mW -> W, bytes -> KiB..TiB."""
    if unit in _DECIMAL_UNITS:
        return _DECIMAL_UNITS[unit]
    if unit == "B":
        for name, size in _BINARY:
            if peak >= size:
                return name, 1.0 / size
    return unit, 1.0


def _label(s: Series, hosts: int) -> str:
    gpu = gpu_index(s.metric)
    parts = [s.host] if hosts > 1 or gpu is None else []
    if gpu is not None:
        parts.append(f"GPU {gpu}")
    return " ".join(parts)


def plot_series(
    series: Sequence[Series],
    path: str | Path,
    *,
    title: str | None = None,
    width: float = 12.0,
    step_ns: int | None = None,
) -> Path:
    """Draw ``series`` to a PNG at ``path``; returns the path.

    With ``step_ns`` (per-bucket aggregates) each value is drawn flat over its bucket.

    Raises ``ValidationError`` when there is nothing to draw or too many metric
    fields (over 12 panels), ``SnapcloudError`` when matplotlib is not installed.
    """
    try:
        import matplotlib.dates as _mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SnapcloudError(
            "plotting needs matplotlib: pip install 'snapcloud[plot]'", field="plot"
        ) from None
    mdates: Any = _mdates  # untyped module
    drawn = [s for s in series if len(s)]
    if not drawn:
        raise ValidationError("plot: the selection holds no samples", field="metric")
    panels: dict[str, list[Series]] = {}
    for s in drawn:
        panels.setdefault(metric_field(s.metric), []).append(s)
    if len(panels) > _MAX_PANELS:
        raise ValidationError(
            f"plot: {len(panels)} metric fields selected; plot at most {_MAX_PANELS} at once",
            field="metric",
        )
    hosts = len({s.host for s in drawn})
    fig = Figure(figsize=(width, 3.2 * len(panels) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes: Any = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (field, members) in zip(axes, sorted(panels.items()), strict=True):
        finite = [np.nanmax(np.abs(s.values)) for s in members if np.isfinite(s.values).any()]
        unit, factor = _scale(members[0].unit, max(finite, default=0.0))
        for s in members:
            ts, values = s.timestamps, s.values
            if step_ns is not None:  # close the last bucket
                ts, values = np.append(ts, ts[-1] + step_ns), np.append(values, values[-1])
            ax.plot(
                ts.astype("datetime64[ns]"),
                values * factor,
                linewidth=1.0,
                drawstyle="default" if step_ns is None else "steps-post",
                label=_label(s, hosts),
            )
        kind = " (counter)" if members[0].kind == "counter" else ""
        ax.set_ylabel(f"{field}{kind}\n[{unit}]" if unit else f"{field}{kind}")
        ax.grid(True, alpha=0.3)
        if len(members) <= _MAX_LEGEND:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
        else:
            ax.set_title(f"{len(members)} series", fontsize="small", loc="right")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[-1].set_xlabel("time (UTC)")
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, format="png", dpi=100)
    return out


def series_from_result(result: QueryResult, agg: str) -> list[Series]:
    """Per-bucket values of one aggregation as series, one per (host, GPU, metric) row group.

    Needs a result with a step. Raises ``ValidationError`` otherwise.
    """
    if result.step_ns is None or agg not in result.aggs:
        raise ValidationError("series_from_result: needs a stepped result holding agg", field="agg")
    cols = {name: i for i, name in enumerate(result.columns)}
    grouped: dict[tuple[str, str], list[tuple[int, float]]] = {}
    meta: dict[tuple[str, str], tuple[str, str]] = {}
    for row in result.rows:
        host = str(row[cols["host"]]) if "host" in cols else "fleet"
        metric = str(row[cols["metric"]])
        gpu = row[cols["gpu"]] if "gpu" in cols else None
        if gpu is not None:
            metric = metric.replace("gpu.*.", f"gpu.{gpu}.", 1)
        value = row[cols[agg]]
        t = row[cols["time"]]
        assert isinstance(t, int)
        grouped.setdefault((host, metric), []).append(
            (t, float(value) if isinstance(value, int | float) else float("nan"))
        )
        unit = str(row[cols["unit"]])
        meta[(host, metric)] = (str(row[cols["kind"]]), f"{unit}/s" if agg == "rate" else unit)
    out = []
    for (host, metric), points in sorted(grouped.items()):
        points.sort()
        kind, unit = meta[(host, metric)]
        out.append(
            Series(
                host=host,
                metric=metric,
                kind=kind,
                unit=unit,
                timestamps=np.array([p[0] for p in points], dtype=np.int64),
                values=np.array([p[1] for p in points], dtype=np.float64),
            )
        )
    return out
