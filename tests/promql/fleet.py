"""Test stores for the PromQL engine: series written as Prometheus's test files write them
(``0+10x10`` = 0, 10, ..., 100 every interval), stored in a real Repository."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from snapcloud.backends import MemoryStore
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.store import Repository

MIN = 60 * 10**9


def expand(spec: str) -> list[float]:
    """Prometheus's series notation: ``a+bxn``, ``a-bxn``, ``axn``, ``_``-free lists."""
    out: list[float] = []
    for tok in spec.split():
        m = re.fullmatch(r"([-+]?[\d.]+|NaN|[-+]?Inf)([-+][\d.]+)?x(\d+)", tok)
        if m:
            start = float(m.group(1))
            step = float(m.group(2) or 0)
            out.extend(start + step * i for i in range(int(m.group(3)) + 1))
        else:
            out.append(float(tok.replace("Inf", "inf")))
    return out


def store_series(
    series: Sequence[tuple[str, str, Mapping[str, str], Sequence[float], Sequence[int]]],
    repo: Repository | None = None,
) -> Repository:
    """Write ``(host, metric, labels, values, timestamps ns)`` rows: one host stream per
    host, one snapshot holding all its metrics (kind: counter when the metric is named
    ``*_total`` in the row, which is then dropped from the stored name)."""
    repo = repo or Repository(MemoryStore())
    by_host: dict[str, list[MetricSeries]] = {}
    labels_of: dict[str, dict[str, str]] = {}
    for host, metric, labels, values, times in series:
        kind = "counter" if metric.endswith("_total") else "gauge"
        name = metric.removesuffix("_total")
        by_host.setdefault(host, []).append(
            MetricSeries(
                name,
                np.asarray(times, dtype=np.int64),
                np.asarray(values, dtype=np.float64),
                kind=kind,
                unit="",
            )
        )
        labels_of.setdefault(host, {}).update(labels)
    for host, metrics in by_host.items():
        lo = min(int(m.timestamps.min()) for m in metrics if m.timestamps.size)
        hi = max(int(m.timestamps.max()) for m in metrics if m.timestamps.size)
        snap = ProfileSnapshot(
            host, metrics, window_start=lo, window_end=hi + 1, labels=labels_of[host]
        )
        repo.stream(host, create=True).append(snap)
        repo.refresh_catalog(host)
    return repo


def load(interval_s: int, rows: Mapping[str, tuple[str, Mapping[str, str], str]]) -> Repository:
    """``{host: (metric, labels, spec)}`` sampled every ``interval_s`` from t = 0."""
    series = []
    for host, (metric, labels, spec) in rows.items():
        values = expand(spec)
        times = [i * interval_s * 10**9 for i in range(len(values))]
        series.append((host, metric, labels, values, times))
    return store_series(series)
