"""Plots a person can read: who is who (colours, line styles, legend, title), units as
drawn, and series with more samples than pixels bucketed without losing an extreme."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snapcloud.errors import EmptySelection, ValidationError
from snapcloud.query import Series, plot_figure, plot_series, unmatched_metrics
from snapcloud.query._plot import MAX_LEGEND_SERIES, axis_label, scale_unit
from snapcloud.query._resample import bucket_width, envelope

T0 = 1_767_225_600 * 10**9
S = 10**9


def _series(host: str, metric: str, n: int = 300, unit: str = "mW", seed: int = 0) -> Series:
    rng = np.random.default_rng([seed, n])
    ts = T0 + np.arange(n, dtype=np.int64) * S
    return Series(host, metric, "gauge", unit, ts, 300_000 + rng.normal(0, 10_000, n))


def _fleet(hosts: int, gpus: int, n: int = 300) -> list[Series]:
    return [
        _series(f"node-{h:02d}", f"gpu.{g}.power_avg_mw", n, seed=h * 100 + g)
        for h in range(hosts)
        for g in range(gpus)
    ]


def _dashes(line: Any) -> Any:
    # matplotlib keeps the dash pattern it was given (before scaling by line width) here;
    # get_linestyle() says only "--" for every custom pattern.
    return line._unscaled_dash_pattern


def _legend_labels(fig: Any) -> list[str]:
    [legend] = fig.legends
    return [t.get_text() for t in legend.get_texts()]


def test_one_host_eight_gpus_colour_per_gpu_host_in_the_title() -> None:
    fig = plot_figure(_fleet(1, 8), title="gpu.*.power_avg_mw")
    [ax] = fig.axes
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == [f"GPU {g}" for g in range(8)]
    assert len({ln.get_color() for ln in lines}) == 8
    assert _legend_labels(fig) == [f"GPU {g}" for g in range(8)]
    assert fig._suptitle.get_text() == "gpu.*.power_avg_mw — node-00"
    assert ax.get_ylabel() == "power_avg [W]"


def test_one_host_one_gpu() -> None:
    fig = plot_figure([_series("gpu-a", "gpu.3.power_avg_mw")])
    [ax] = fig.axes
    assert fig._suptitle.get_text() == "gpu-a"
    assert ax.get_title(loc="left") == "gpu.3.power_avg_mw"
    assert _legend_labels(fig) == ["GPU 3"]
    [line] = ax.get_lines()
    assert max(line.get_ydata()) < 1000  # drawn in W, not mW


def test_four_hosts_eight_gpus_colour_by_host_line_style_by_gpu() -> None:
    fig = plot_figure(_fleet(4, 8), title="power")
    [ax] = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 32
    by_host: dict[str, set[Any]] = {}
    by_gpu: dict[str, set[Any]] = {}
    for ln in lines:
        host, _, gpu = ln.get_label().partition(" GPU ")
        by_host.setdefault(host, set()).add(ln.get_color())
        by_gpu.setdefault(gpu, set()).add(_dashes(ln))
    assert all(len(c) == 1 for c in by_host.values())  # one colour per host
    assert len({next(iter(c)) for c in by_host.values()}) == 4  # distinct across hosts
    assert all(len(d) == 1 for d in by_gpu.values())  # a GPU looks the same on every host
    assert len({next(iter(d)) for d in by_gpu.values()}) == 8  # distinct across GPUs
    labels = _legend_labels(fig)
    assert labels == [
        "hosts (colour)",
        *[f"node-{h:02d}" for h in range(4)],
        "GPUs (line)",
        *[f"GPU {g}" for g in range(8)],
    ]
    assert fig._suptitle.get_text() == "power — 4 hosts"


def test_legend_names_each_series_up_to_the_limit() -> None:
    series = _fleet(2, 4)
    assert len(series) <= MAX_LEGEND_SERIES
    fig = plot_figure(series)
    expected = [f"node-{h:02d} GPU {g}" for h in range(2) for g in range(4)]
    assert _legend_labels(fig) == expected
    [ax] = fig.axes
    colours = {ln.get_label(): ln.get_color() for ln in ax.get_lines()}
    assert colours["node-00 GPU 0"] == colours["node-00 GPU 3"] != colours["node-01 GPU 0"]


def test_host_and_gpu_metrics_of_several_hosts_get_the_factored_legend() -> None:
    series = [*_fleet(2, 2), _series("node-00", "cpu.util", unit="%")]
    series.append(_series("node-01", "cpu.util", unit="%"))
    fig = plot_figure(series)
    assert _legend_labels(fig) == [
        "hosts (colour)",
        "node-00",
        "node-01",
        "GPUs (line)",
        "GPU 0",
        "GPU 1",
    ]
    cpu = next(ax for ax in fig.axes if ax.get_title(loc="left") == "cpu.util")
    assert [_dashes(ln) for ln in cpu.get_lines()] == [(0, None), (0, None)]  # solid


def test_many_hosts_keep_distinct_colours_and_a_bounded_legend() -> None:
    series = [_series(f"h{i:03d}", "cpu.util", unit="%") for i in range(30)]
    fig = plot_figure(series)
    [ax] = fig.axes
    assert len({tuple(np.round(ln.get_color(), 6)) for ln in ax.get_lines()}) == 30
    labels = _legend_labels(fig)
    assert labels[0] == "hosts (colour)" and labels[-1] == "... 10 more hosts"
    assert len(labels) == 22 and ax.get_ylabel() == "cpu.util [%]"


@pytest.mark.parametrize(
    ("field", "unit", "peak", "label"),
    [
        ("gpu.*.power_avg_mw", "mW", 700_000, "power_avg [W]"),
        ("gpu.*.power_avg_mw", "mW", 7_000_000, "power_avg [kW]"),
        ("gpu.*.energy_mj", "mJ", 2.5e9, "energy [MJ]"),
        ("gpu.*.energy_mj", "mJ/s", 650_000, "energy [W]"),  # a rate of mJ is power
        ("mem.used", "B", 700 * 2**30, "mem.used [GiB]"),
        ("disk.read_bytes", "bytes", 3 * 2**20, "disk.read [MiB]"),
        ("net.rx_bytes", "B/s", 5 * 2**30, "net.rx [GiB/s]"),
        ("gpu.*.fb_used_mib", "MiB", 60_000, "fb_used [GiB]"),
        ("gpu.*.util_pct", "%", 100, "util [%]"),
        ("gpu.*.temp_c", "C", 80, "temp [C]"),
        ("gpu.*.sm_clock_mhz", "MHz", 1980, "sm_clock [MHz]"),
        ("load.1", "", 3.2, "load.1"),
        ("gpu.*.power_avg_mw", "W", 700, "power_avg_mw [W]"),  # the suffix is kept if it lies
    ],
)
def test_axis_labels_name_the_unit_of_the_drawn_values(
    field: str, unit: str, peak: float, label: str
) -> None:
    shown, factor = scale_unit(unit, peak)
    assert axis_label(field, shown, unit) == label
    assert 1 <= peak * factor < 1024 or unit in ("", "%", "C", "MHz")


def test_units_as_drawn_in_the_figure() -> None:
    mem = _series("h", "mem.used", unit="B")
    mem.values = np.full(len(mem), 700.0 * 2**30)
    fig = plot_figure([_series("h", "gpu.0.power_avg_mw"), mem])
    power_ax, mem_ax = sorted(fig.axes, key=lambda a: a.get_title(loc="left"))
    assert power_ax.get_ylabel() == "power_avg [W]" and mem_ax.get_ylabel() == "mem.used [GiB]"
    [line] = mem_ax.get_lines()
    assert np.allclose(line.get_ydata(), 700.0)


def test_envelope_keeps_min_max_and_mean_of_every_column_against_numpy() -> None:
    rng = np.random.default_rng(3)
    n, columns = 200_000, 997
    ts = np.sort(rng.integers(T0, T0 + 3600 * S, n)).astype(np.int64)
    values = rng.normal(0, 1, n)
    values[rng.integers(0, n, 500)] = np.nan
    values[[17, 99_999]] = [1e9, -1e9]
    start, end = int(ts[0]) - 5, int(ts[-1])
    env = envelope(ts, values, start, end, columns)
    width = bucket_width(start, end, columns)
    assert width * columns >= end - start + 1  # a bucket is never wider than a column
    edges = start + np.arange(columns + 1, dtype=np.int64) * width
    got = 0
    for c in range(columns):
        inside = values[(ts >= edges[c]) & (ts < edges[c + 1])]
        if inside.size == 0:
            continue
        i = int(np.searchsorted(env.times, edges[c]))
        assert edges[c] <= env.times[i] < edges[c + 1]
        assert env.low[i] == np.nanmin(inside) and env.high[i] == np.nanmax(inside)
        assert env.mean[i] == pytest.approx(np.nanmean(inside), rel=1e-12, abs=1e-12)
        assert env.count[i] == np.count_nonzero(~np.isnan(inside))
        got += 1
    assert got == len(env) and len(env) <= columns
    assert np.nanmax(env.high) == 1e9 and np.nanmin(env.low) == -1e9


def test_envelope_all_nan_bucket_is_a_gap_and_bad_input_is_refused() -> None:
    ts = np.array([0, 1, 10, 11], dtype=np.int64)
    env = envelope(ts, np.array([np.nan, np.nan, 2.0, 4.0]), 0, 19, 2)
    assert np.isnan(env.low[0]) and np.isnan(env.mean[0]) and env.count.tolist() == [0, 2]
    assert env.mean[1] == 3.0 and env.low[1] == 2.0 and env.high[1] == 4.0
    with pytest.raises(ValidationError):
        envelope(ts[::-1].copy(), np.zeros(4), 0, 19, 2)
    with pytest.raises(ValidationError):
        envelope(ts, np.zeros(4), 2, 19, 2)
    with pytest.raises(ValidationError):
        envelope(ts, np.zeros(4), 0, 19, 0)


def _band_range(ax: Any) -> tuple[float, float]:
    ys = np.concatenate([c.get_paths()[0].vertices[:, 1] for c in ax.collections])
    return float(ys.min()), float(ys.max())


def test_a_million_points_are_drawn_as_one_bucket_per_pixel_column() -> None:
    n = 1_000_000
    rng = np.random.default_rng(5)
    ts = T0 + np.arange(n, dtype=np.int64) * (S // 10)
    values = 300_000 + rng.normal(0, 5_000, n)
    values[[123_456, 654_321]] = [1_400_000.0, 0.0]
    fig = plot_figure([Series("h", "gpu.0.power_avg_mw", "gauge", "mW", ts, values)], width=10.0)
    [ax] = fig.axes
    [line] = ax.get_lines()
    assert len(line.get_xdata()) <= 10 * 100  # at most one point per pixel of the width
    assert _band_range(ax) == (0.0, 1.4)  # both spikes kept (the 1.4 MW one scales to kW)
    assert ax.get_ylabel() == "power_avg [kW]"
    assert "min-max per pixel column" in ax.get_title(loc="right")
    small = plot_figure([_series("h", "gpu.0.power_avg_mw", n=500)])
    assert not small.axes[0].collections and small.axes[0].get_title(loc="right") == ""


def test_unmatched_globs_are_named_and_nothing_to_draw_is_typed(tmp_path: Path) -> None:
    series: Sequence[Series] = _fleet(1, 2)
    assert unmatched_metrics(["gpu.*.power_avg_mw", "gpu.*.nosuch", "cpu.util"], series) == [
        "gpu.*.nosuch",
        "cpu.util",
    ]
    empty = Series("h", "gpu.0.temp_c", "gauge", "C", np.empty(0, np.int64), np.empty(0))
    assert unmatched_metrics(["gpu.0.temp_c"], [empty]) == ["gpu.0.temp_c"]
    with pytest.raises(EmptySelection) as info:
        plot_series([empty], tmp_path / "x.png", metrics=["gpu.0.temp_c", "nothing.*"])
    assert info.value.unmatched == ["gpu.0.temp_c", "nothing.*"]
    assert "'nothing.*'" in str(info.value) and isinstance(info.value, ValidationError)
    assert not (tmp_path / "x.png").exists()


def test_plot_series_writes_the_png(tmp_path: Path) -> None:
    out = plot_series(_fleet(2, 2), tmp_path / "p.png", title="t")
    assert out == tmp_path / "p.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
