"""Selected series over time as a PNG: one panel per metric field, one line per host or GPU.

Who is who: with one host, each GPU (or series) has its own colour and the host is
named in the title; with several, each host has a colour and each GPU a line style,
the same in every panel. The legend has one entry per series up to
``MAX_LEGEND_SERIES``; past that it lists the hosts' colours and the GPUs' line styles
instead. The y axis says the unit of the values as drawn (``power [W]`` for a
``gpu.*.power_avg_mw`` series, scaled from mW). A series with more samples than the figure
has pixel columns is drawn as one bucket per column (``_resample``): the mean as the
line, the min-max range as a band, so no extreme is lost and a million points read.

matplotlib is an optional extra (``snapcloud[plot]``), imported only here and
only when a plot is drawn; the object-oriented API (``Figure`` + Agg canvas) is
used so no global pyplot state or GUI backend is touched.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snapcloud.errors import EmptySelection, SnapcloudError, ValidationError
from snapcloud.query._resample import envelope
from snapcloud.query._result import QueryResult, Series
from snapcloud.query._selectors import gpu_index, is_glob, metric_field

__all__ = [
    "MAX_LEGEND_SERIES",
    "axis_label",
    "plot_figure",
    "plot_series",
    "scale_unit",
    "series_from_result",
    "unmatched_metrics",
]

_MAX_PANELS = 12
#: Up to this many series the legend names each; past it, hosts and GPUs separately.
MAX_LEGEND_SERIES = 12
_MAX_LEGEND_HOSTS = 20
_DPI = 100
#: Line styles told apart at 1 px (solid, dashed, dotted, dash-dot, ...), one per GPU index.
_GPU_STYLES: tuple[Any, ...] = (
    "-",
    (0, (5, 2)),
    (0, (1, 1.2)),
    (0, (5, 1.5, 1, 1.5)),
    (0, (2, 3)),
    (0, (5, 1.5, 1, 1.5, 1, 1.5)),
    (0, (10, 2)),
    (0, (1, 3)),
)
_NO_GPU_COLOUR = "0.15"
_BINARY = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_DECIMAL = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))
#: A stored unit -> (base unit, factor to it). Bytes scale by 1024s, W and J by 1000s.
_BASE_UNITS = {
    "mW": ("W", 1e-3),
    "W": ("W", 1.0),
    "mJ": ("J", 1e-3),
    "J": ("J", 1.0),
    "mJ/s": ("W", 1e-3),
    "J/s": ("W", 1.0),
    "ms": ("s", 1e-3),
    "B": ("B", 1.0),
    "bytes": ("B", 1.0),
    "KiB": ("B", 2.0**10),
    "MiB": ("B", 2.0**20),
    "GiB": ("B", 2.0**30),
}
#: Name suffixes that only repeat the unit (``power_avg_mw`` in mW): dropped from axis labels.
_UNIT_SUFFIXES = {
    "_mw": ("mW",),
    "_w": ("W",),
    "_mj": ("mJ", "mJ/s"),
    "_j": ("J", "J/s"),
    "_ms": ("ms",),
    "_pct": ("%",),
    "_c": ("C",),
    "_mhz": ("MHz",),
    "_bytes": ("B", "bytes", "B/s", "bytes/s"),
    "_mib": ("MiB", "MiB/s"),
}


def scale_unit(unit: str, peak: float) -> tuple[str, float]:
    """A readable unit for values up to ``peak`` and the factor into it: mW -> W,
    mJ -> J/kJ/MJ, bytes and MiB -> KiB..TiB; other units (%, C, MHz) unchanged."""
    per_second = unit.endswith("/s") and unit not in _BASE_UNITS
    core = unit[:-2] if per_second else unit
    if core not in _BASE_UNITS:
        return unit, 1.0
    base, factor = _BASE_UNITS[core]
    top = abs(peak) * factor
    table = _BINARY if base == "B" else tuple((p + base, size) for p, size in _DECIMAL)
    if base != "s":
        for name, size in table:
            if top >= size:
                base, factor = name, factor / size
                break
    return (base + "/s" if per_second else base), factor


def axis_label(field: str, unit: str, stored_unit: str = "") -> str:
    """The y label of a panel: the field without its GPU prefix, and without a name suffix
    that repeats ``stored_unit``, then the unit as drawn:
    ``axis_label("gpu.*.power_avg_mw", "W", "mW") == "power_avg [W]"``."""
    name = field.removeprefix("gpu.*.")
    for suffix, units in _UNIT_SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix) and stored_unit in units:
            name = name[: -len(suffix)]
            break
    return f"{name} [{unit}]" if unit else name


def unmatched_metrics(patterns: Sequence[str], series: Sequence[Series]) -> list[str]:
    """The metric names or globs of ``patterns`` that no series with samples matches,
    in the order given (for a warning: a misspelt glob draws nothing and says so)."""
    names = {s.metric for s in series if len(s)}
    out = []
    for p in patterns:
        hit = any(fnmatch.fnmatchcase(n, p) for n in names) if is_glob(p) else p in names
        if not hit:
            out.append(p)
    return out


@dataclass(frozen=True)
class _Look:
    """How one (host, GPU) is drawn and named, the same in every panel."""

    colour: Any
    style: Any
    label: str


class _Looks:
    """Colours and line styles: by GPU with one host, by host and GPU with several."""

    def __init__(self, series: Sequence[Series]) -> None:
        self.hosts = sorted({s.host for s in series})
        self.gpus = sorted({g for s in series if (g := gpu_index(s.metric)) is not None})
        self.keys = sorted(
            {(s.host, gpu_index(s.metric)) for s in series},
            key=lambda k: (k[0], -1 if k[1] is None else k[1]),
        )
        many = len(self.hosts) > 1
        self._colours = _palette(len(self.hosts) if many else len(self.gpus))
        self.by_host = many

    def host_colour(self, host: str) -> Any:
        return self._colours[self.hosts.index(host)]

    def gpu_style(self, gpu: int | None) -> Any:
        return "-" if gpu is None else _GPU_STYLES[self.gpus.index(gpu) % len(_GPU_STYLES)]

    def look(self, host: str, gpu: int | None) -> _Look:
        """The colour, line style and legend label of ``host``'s GPU ``gpu`` (or host metric)."""
        if self.by_host:
            label = host if gpu is None else f"{host} GPU {gpu}"
            return _Look(self.host_colour(host), self.gpu_style(gpu), label)
        if gpu is None:
            return _Look(_NO_GPU_COLOUR, "-", host)
        return _Look(self._colours[self.gpus.index(gpu)], "-", f"GPU {gpu}")

    def legend(self, line2d: Any) -> tuple[list[Any], list[str]]:
        """Legend handles and labels: each series, or past ``MAX_LEGEND_SERIES`` (or with
        host and GPU metrics of several hosts) the hosts' colours (up to 20 named) and
        the GPUs' line styles."""
        # A host's own metrics and its GPU 0 share colour and solid line (in other
        # panels); a legend naming both would show two identical entries.
        mixed = self.by_host and bool(self.gpus) and any(g is None for _, g in self.keys)
        if not self.by_host or (len(self.keys) <= MAX_LEGEND_SERIES and not mixed):
            shown = self.keys[: max(MAX_LEGEND_SERIES, _MAX_LEGEND_HOSTS)]
            looks = [self.look(h, g) for h, g in shown]
            handles = [line2d([], [], color=lk.colour, linestyle=lk.style) for lk in looks]
            labels = [lk.label for lk in looks]
            return self._more(handles, labels, len(self.keys) - len(shown), "series", line2d)
        handles = [line2d([], [], linestyle="none")]
        labels = ["hosts (colour)"]
        named = self.hosts[:_MAX_LEGEND_HOSTS]
        handles += [line2d([], [], color=self.host_colour(h)) for h in named]
        labels += named
        handles, labels = self._more(handles, labels, len(self.hosts) - len(named), "hosts", line2d)
        if self.gpus:
            handles.append(line2d([], [], linestyle="none"))
            labels.append("GPUs (line)")
            handles += [line2d([], [], color="0.3", linestyle=self.gpu_style(g)) for g in self.gpus]
            labels += [f"GPU {g}" for g in self.gpus]
        return handles, labels

    @staticmethod
    def _more(
        handles: list[Any], labels: list[str], rest: int, what: str, line2d: Any
    ) -> tuple[list[Any], list[str]]:
        if rest > 0:
            handles.append(line2d([], [], linestyle="none"))
            labels.append(f"... {rest} more {what}")
        return handles, labels


def _palette(n: int) -> list[Any]:
    """``n`` distinct colours: tab10, tab20, then evenly spaced along a colour map."""
    from matplotlib import colormaps

    if n <= 20:
        cmap = colormaps["tab10" if n <= 10 else "tab20"]
        return [cmap(i) for i in range(max(n, 1))]
    cmap = colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, n)]


def _import_matplotlib() -> tuple[Any, Any, Any, Any]:
    try:
        import matplotlib.dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise SnapcloudError(
            "plotting needs matplotlib: pip install 'snapcloud[plot]'", field="plot"
        ) from None
    return mdates, FigureCanvasAgg, Figure, Line2D


def _panels(series: Sequence[Series]) -> dict[str, list[Series]]:
    panels: dict[str, list[Series]] = {}
    for s in series:
        panels.setdefault(metric_field(s.metric), []).append(s)
    if len(panels) > _MAX_PANELS:
        raise ValidationError(
            f"plot: {len(panels)} metric fields selected; plot at most {_MAX_PANELS} at once",
            field="metric",
        )
    return dict(sorted(panels.items()))


def _title(title: str | None, hosts: list[str]) -> str:
    where = hosts[0] if len(hosts) == 1 else f"{len(hosts)} hosts"
    return f"{title} — {where}" if title else where


def _draw_series(
    ax: Any,
    s: Series,
    look: _Look,
    factor: float,
    span: tuple[int, int],
    columns: int,
    step_ns: int | None,
    band_alpha: float,
) -> bool:
    """Draw one series; return whether it was bucketed (more samples than columns)."""
    ts, values = s.timestamps, s.values
    if step_ns is not None:  # close the last bucket
        ts, values = np.append(ts, ts[-1] + step_ns), np.append(values, values[-1])
    line = {"color": look.colour, "linestyle": look.style, "label": look.label}
    line["linewidth"] = 0.8 if look.style != "-" else 1.0
    if ts.size <= columns:
        drawstyle = "default" if step_ns is None else "steps-post"
        ax.plot(ts.astype("datetime64[ns]"), values * factor, drawstyle=drawstyle, **line)
        return False
    env = envelope(ts, values, span[0], span[1], columns)
    x = env.times.astype("datetime64[ns]")
    ax.fill_between(
        x, env.low * factor, env.high * factor, color=look.colour, alpha=band_alpha, lw=0
    ).set_gid(f"{look.label} min-max")
    ax.plot(x, env.mean * factor, **line)
    return True


def _draw_panel(
    ax: Any,
    field: str,
    members: list[Series],
    looks: _Looks,
    span: tuple[int, int],
    columns: int,
    step_ns: int | None,
) -> bool:
    """One metric field's series on ``ax``, its unit scaled; return whether any was bucketed."""
    finite = [np.nanmax(np.abs(s.values)) for s in members if np.isfinite(s.values).any()]
    unit, factor = scale_unit(members[0].unit, max(finite, default=0.0))
    alpha = 0.3 if len(members) <= 4 else 0.15  # one band must show; many must not fog
    bucketed = False
    for s in members:
        look = looks.look(s.host, gpu_index(s.metric))
        bucketed |= _draw_series(ax, s, look, factor, span, columns, step_ns, alpha)
    kind = " (counter)" if members[0].kind == "counter" else ""
    names = {s.metric for s in members}
    shown = names.pop() if len(names) == 1 else field
    ax.set_title(f"{shown}{kind}", fontsize="small", loc="left")
    ax.set_ylabel(axis_label(field, unit, members[0].unit))
    ax.grid(True, alpha=0.3)
    return bucketed


def plot_series(
    series: Sequence[Series],
    path: str | Path,
    *,
    title: str | None = None,
    width: float = 12.0,
    step_ns: int | None = None,
    metrics: Sequence[str] | None = None,
) -> Path:
    """Draw ``series`` to a PNG at ``path`` (``plot_figure``); returns the path.

    Raises what ``plot_figure`` raises.
    """
    fig = plot_figure(series, title=title, width=width, step_ns=step_ns, metrics=metrics)
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def plot_figure(
    series: Sequence[Series],
    *,
    title: str | None = None,
    width: float = 12.0,
    step_ns: int | None = None,
    metrics: Sequence[str] | None = None,
) -> Any:
    """Draw ``series`` on a new matplotlib ``Figure`` (Agg canvas) and return it.

    With ``step_ns`` (per-bucket aggregates) each value is drawn flat over its bucket.
    ``metrics``, the patterns the series were selected by, only sharpens the error when
    nothing matched (``unmatched_metrics`` tells the caller which matched nothing).
    The title gets the host's name (one host) or the number of hosts. ``width`` is in
    inches at 100 dpi; a series with more samples than the figure's width in pixels is
    drawn bucketed (mean line, min-max band).

    Raises ``EmptySelection`` (a ``ValidationError``; its ``unmatched`` lists the
    ``metrics`` patterns that matched no series) when no series holds a sample,
    ``ValidationError`` for over 12 metric fields (panels), ``SnapcloudError`` when
    matplotlib is not installed.
    """
    mdates, canvas, figure, line2d = _import_matplotlib()
    drawn = [s for s in series if len(s)]
    if not drawn:
        missing = unmatched_metrics(metrics or (), series)
        said = f" (nothing matched {', '.join(repr(p) for p in missing)})" if missing else ""
        raise EmptySelection(
            f"plot: the selection holds no samples{said}", field="metric", unmatched=missing
        )
    panels = _panels(drawn)
    looks = _Looks(drawn)
    end = max(int(s.timestamps[-1]) for s in drawn) + (step_ns or 0)
    span = (min(int(s.timestamps[0]) for s in drawn), end)
    columns = int(width * _DPI)  # at most one bucket per pixel of the figure's width
    fig = figure(figsize=(width, 3.0 * len(panels) + 0.9), layout="constrained", dpi=_DPI)
    canvas(fig)
    axes: Any = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    bucketed = False
    for ax, (field, members) in zip(axes, panels.items(), strict=True):
        bucketed |= _draw_panel(ax, field, members, looks, span, columns, step_ns)
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if bucketed:
        axes[0].set_title(
            "more samples than pixels: line = mean, band = min-max per pixel column",
            fontsize="x-small",
            loc="right",
        )
    axes[-1].set_xlabel("time (UTC)")
    fig.suptitle(_title(title, looks.hosts))
    handles, labels = looks.legend(line2d)
    fig.legend(
        handles, labels, loc="outside right upper", fontsize="small", frameon=False, handlelength=4
    )
    return fig


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
