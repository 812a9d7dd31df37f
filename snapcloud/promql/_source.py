"""Read the series a PromQL selector names from a snapcloud store, through ``snapcloud.query``.

A selector becomes a fleet query: the ``host`` equality matcher becomes the
selector's host, the other matchers become planning predicates (``Narrowing``):
a host is skipped before its index is read when a matcher on one of its catalog
labels (or ``host``) fails, and a metric is planned only when its mapped name and
index labels can match. So the planner reads exactly the catalog entries, index
segments and data objects a ``snapcloud query`` of the same metrics and hosts reads,
within the same memory limit. After decoding, every matcher is checked once more
on the series' full labels (with the ``_total`` its kind decides).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from snapcloud.errors import ValidationError
from snapcloud.models import ProfileSnapshot, validate_host
from snapcloud.promql._ast import LabelMatch, VectorSelector
from snapcloud.promql._engine import RawSeries
from snapcloud.promql._names import host_label_names, map_metric, series_labels
from snapcloud.query import (
    DEFAULT_WORKERS,
    Budget,
    HostPlan,
    Narrowing,
    QueryStats,
    Selector,
    plan_query,
    scan,
)
from snapcloud.store import Repository

__all__ = ["MetricMeta", "SeriesInfo", "StoreSource"]


@dataclass(frozen=True)
class MetricMeta:
    """What the store says of a metric: gauge or counter, and its unit."""

    kind: str
    unit: str


@dataclass(frozen=True)
class SeriesInfo:
    """A series known from the index alone: its labels and (when known) kind and unit."""

    labels: dict[str, str]
    host: str
    metric: str
    meta: MetricMeta | None


def _exact_host(matchers: tuple[LabelMatch, ...]) -> tuple[str, ...] | None:
    for m in matchers:
        if m.name == "host" and m.op == "=":
            try:
                return (validate_host(m.value),)
            except ValidationError:
                return None
    return ()


class _Predicates:
    """The matchers of one selector as planning predicates (see the module doc)."""

    def __init__(self, matchers: tuple[LabelMatch, ...]) -> None:
        self.names = [m for m in matchers if m.name == "__name__"]
        self.others = [m for m in matchers if m.name != "__name__"]

    def host(self, host: str, labels: Mapping[str, str]) -> bool:
        plain, per_index = host_label_names(labels)
        for m in self.others:
            if m.name == "host":
                if not m.matches(host):
                    return False
            elif m.name in plain and m.name not in per_index:
                value = series_labels(host, {k: v for k, v in labels.items()}, "x", None)
                if not m.matches(value.get(m.name, "")):
                    return False
        return True

    def metric(self, host: str, labels: Mapping[str, str], metric: str) -> bool:
        mapped = map_metric(metric)
        if not any(all(m.matches(n) for m in self.names) for n in mapped.names()):
            return False
        full = series_labels(host, labels, metric, None)
        return all(m.matches(full.get(m.name, "")) for m in self.others)

    def series(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in (*self.names, *self.others))


class StoreSource:
    """A ``SeriesSource`` over a ``Repository``; keeps what it learns of metric kinds and
    units (for listings) and the figures of the queries it ran (``stats``)."""

    def __init__(
        self,
        repo: Repository,
        *,
        workers: int = DEFAULT_WORKERS,
        meta: dict[tuple[str, str], MetricMeta] | None = None,
    ) -> None:
        self.repo = repo
        self.workers = workers
        #: (host, metric) -> kind and unit; pass one dict to sources that should share it.
        self.meta: dict[tuple[str, str], MetricMeta] = {} if meta is None else meta
        self.stats: list[QueryStats] = []
        self._lock = threading.Lock()

    def select(self, selector: VectorSelector, start_ns: int, end_ns: int) -> list[RawSeries]:
        """Every series ``selector`` matches, its samples in ``[start_ns, end_ns)``.

        Raises ``MemoryExceeded`` over the store's query memory limit (16 B a sample),
        and what a fleet query raises (``QueryIncomplete``, ``CorruptError``...).
        """
        hosts = _exact_host(selector.matchers)
        if hosts is None:
            return []
        pred = _Predicates(selector.matchers)
        budget = Budget(self.repo.config.max_query_memory_bytes)
        parts: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        labels_of: dict[tuple[str, str], dict[str, str]] = {}

        def take(hp: HostPlan, snap: ProfileSnapshot) -> int:
            n = 0
            for m in snap.metrics:
                key = (hp.host, m.name)
                self._learn(key, m.kind, m.unit)
                labels = labels_of.get(key)
                if labels is None:
                    labels = series_labels(hp.host, hp.labels, m.name, m.kind)
                    labels_of[key] = labels
                if not pred.series(labels):
                    continue
                budget.hold(16 * m.values.size, "raw samples")
                parts.setdefault(key, []).append((m.timestamps.copy(), m.values.copy()))
                n += m.values.size
            return n

        sel = Selector(hosts=hosts, start_ns=start_ns, end_ns=end_ns, metrics=("*",))
        stats = scan(
            self.repo,
            sel,
            take,
            budget=budget,
            workers=self.workers,
            with_catalog=True,
            narrow=Narrowing(host=pred.host, metric=pred.metric),
        )
        with self._lock:
            self.stats.append(stats)
        out = []
        for key in sorted(parts):
            ts = np.concatenate([p[0] for p in parts[key]])
            vs = np.concatenate([p[1] for p in parts[key]])
            order = np.argsort(ts, kind="stable")  # windows are stored in any order
            out.append(RawSeries(labels_of[key], ts[order], vs[order]))
        return out

    def _learn(self, key: tuple[str, str], kind: str, unit: str) -> None:
        if key not in self.meta:
            with self._lock:
                self.meta[key] = MetricMeta(kind, unit)

    def series(
        self, matchers: tuple[LabelMatch, ...], start_ns: int | None, end_ns: int | None
    ) -> list[SeriesInfo]:
        """The series ``matchers`` select with data in ``[start_ns, end_ns)``, from the
        catalog and index alone (plus, for a metric whose kind is not known yet, the
        newest snapshot of its host that holds it: one or two object reads, once)."""
        hosts = _exact_host(matchers)
        if hosts is None:
            return []
        pred = _Predicates(matchers)
        sel = Selector(hosts=hosts, start_ns=start_ns, end_ns=end_ns, metrics=("*",))
        plan = plan_query(
            self.repo,
            sel,
            workers=self.workers,
            with_catalog=True,
            narrow=Narrowing(host=pred.host, metric=pred.metric),
        )
        out = []
        for hp in plan.hosts:
            unknown = [m for m in hp.metrics if (hp.host, m) not in self.meta]
            if unknown:
                self._read_meta(hp, unknown)
            for metric in hp.metrics:
                meta = self.meta.get((hp.host, metric))
                labels = series_labels(hp.host, hp.labels, metric, meta.kind if meta else None)
                if "__name__" not in labels:
                    labels = {"__name__": map_metric(metric).base, **labels}
                if pred.series(labels):
                    out.append(SeriesInfo(labels, hp.host, metric, meta))
        return out

    def _read_meta(self, hp: HostPlan, names: list[str]) -> None:
        stream = hp.stream
        if stream is None:
            return
        wanted = set(names)
        for entry in list(reversed(hp.entries))[:2]:  # the newest snapshots name the most
            snap = stream.read(entry)
            for m in snap.metrics:
                self._learn((hp.host, m.name), m.kind, m.unit)
            wanted -= set(snap.metric_names)
            if not wanted:
                return
