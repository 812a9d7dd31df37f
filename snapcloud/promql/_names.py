"""The stable mapping from snapcloud metric names and catalog labels to Prometheus series.

A snapcloud metric name is split on ``.`` into segments. An all-digit segment that
has a segment before and after it is an *index*: it becomes a label named after
the segment before it (``gpu.3.power_avg_mw`` -> ``gpu="3"``), and leaves the name.
The remaining segments are joined with ``_``, every character outside
``[A-Za-z0-9_]`` becomes ``_``, and the name gets the prefix ``snapcloud_`` and,
for counters, the suffix ``_total``::

    gpu.3.power_avg_mw              snapcloud_gpu_power_avg_mw{gpu="3"}
    gpu.0.mig.1.util_pct        snapcloud_gpu_mig_util_pct{gpu="0", mig="1"}
    gpu.0.proc.4242.mem_bytes   snapcloud_gpu_proc_mem_bytes{gpu="0", proc="4242"}
    cpu.util / cpu.7.util       snapcloud_cpu_util{} / snapcloud_cpu_util{cpu="7"}
    net.rx_bytes (counter)      snapcloud_net_rx_bytes_total
    load.1                      snapcloud_load_1          (a last segment is never an index)

Every series also carries ``host`` and the host's catalog labels (snapshot labels
overlaid with user labels). A catalog label key is mapped like a metric name; a key
with an index (``gpu.3.uuid``) labels only the series with that index
(``gpu_uuid`` on the series with ``gpu="3"``), the others label every series of the
host (``gpu.model`` -> ``gpu_model``). docs/SERVE.md has the full rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "PREFIX",
    "MappedName",
    "host_label_names",
    "map_metric",
    "prom_label_name",
    "series_labels",
]

PREFIX = "snapcloud_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_RESERVED = frozenset({"__name__", "host"})


def _sanitize(text: str) -> str:
    return _UNSAFE.sub("_", text)


def _label(text: str) -> str:
    """A label name: sanitized, and not starting with a digit."""
    out = _sanitize(text)
    return "_" + out if out[:1].isdigit() else out


@dataclass(frozen=True)
class MappedName:
    """A snapcloud metric name as Prometheus sees it (before the counter suffix)."""

    base: str  # snapcloud_... without _total
    index: tuple[tuple[str, str], ...]  # (label, value) pairs, in name order

    def name(self, kind: str) -> str:
        """The series name: ``base``, plus ``_total`` for a counter."""
        if kind == "counter" and not self.base.endswith("_total"):
            return self.base + "_total"
        return self.base

    def names(self) -> tuple[str, ...]:
        """Both names the series may have before its kind is known (gauge, counter)."""
        total = self.name("counter")
        return (self.base,) if total == self.base else (self.base, total)


@lru_cache(maxsize=65536)
def _split(name: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    parts = name.split(".")
    kept: list[str] = []
    index: list[tuple[str, str]] = []
    used: set[str] = set()
    for i, part in enumerate(parts):
        if 0 < i < len(parts) - 1 and part.isdigit() and kept and not parts[i - 1].isdigit():
            label = _label(parts[i - 1])
            if label not in _RESERVED and not label.startswith("__") and label not in used:
                used.add(label)
                index.append((label, part))
                continue
        kept.append(part)
    return tuple(kept), tuple(index)


@lru_cache(maxsize=65536)
def map_metric(name: str) -> MappedName:
    """How snapcloud metric ``name`` appears in Prometheus (see the module doc)."""
    kept, index = _split(name)
    return MappedName(PREFIX + "_".join(_sanitize(p) for p in kept), index)


@lru_cache(maxsize=65536)
def prom_label_name(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A catalog label key as ``(Prometheus label name, index pairs it applies to)``."""
    kept, index = _split(key)
    return _label("_".join(kept)), index


def _catalog_labels(
    labels: Mapping[str, str],
) -> tuple[dict[str, str], list[tuple[str, tuple[tuple[str, str], ...], str]]]:
    plain: dict[str, str] = {}
    indexed: list[tuple[str, tuple[tuple[str, str], ...], str]] = []
    for key in sorted(labels):
        name, index = prom_label_name(key)
        if index:
            indexed.append((name, index, labels[key]))
        elif name not in plain:  # two keys on one name: the first in key order wins
            plain[name] = labels[key]
    return plain, indexed


@lru_cache(maxsize=4096)
def _host_labels_cached(
    items: tuple[tuple[str, str], ...],
) -> tuple[dict[str, str], list[tuple[str, tuple[tuple[str, str], ...], str]]]:
    return _catalog_labels(dict(items))


def host_label_names(labels: Mapping[str, str]) -> tuple[set[str], set[str]]:
    """``(host-wide label names, per-index label names)`` the catalog labels give."""
    plain, indexed = _host_labels_cached(tuple(sorted(labels.items())))
    return set(plain), {name for name, _, _ in indexed}


def series_labels(
    host: str, catalog: Mapping[str, str], metric: str, kind: str | None
) -> dict[str, str]:
    """Every label of the series of ``metric`` on ``host``: ``__name__`` (only when
    ``kind`` is known), ``host``, the index labels, then the catalog labels. A catalog
    label whose name is taken (``host``, an index label) is exposed as ``label_<name>``."""
    mapped = map_metric(metric)
    out: dict[str, str] = {}
    if kind is not None:
        out["__name__"] = mapped.name(kind)
    out["host"] = host
    index = dict(mapped.index)
    out.update(index)
    plain, indexed = _host_labels_cached(tuple(sorted(catalog.items())))
    taken = set(out)
    for name, value in plain.items():
        out["label_" + name if name in taken or name.startswith("__") else name] = value
    have = set(mapped.index)
    for name, pairs, value in indexed:
        if set(pairs) <= have:
            key = "label_" + name if name in taken else name
            out.setdefault(key, value)
    return {k: v for k, v in out.items() if v != ""}
