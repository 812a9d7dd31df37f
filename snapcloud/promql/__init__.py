"""PromQL over a snapcloud store: the engine behind ``snapcloud serve``.

``promql-parser`` parses; this package evaluates the subset documented in
docs/SERVE.md (selectors, offset, @, rate/irate/increase/delta/deriv, the
``*_over_time`` functions, sum/avg/min/max/count/topk/bottomk/quantile with
by/without, arithmetic with on/ignoring), reading series through
``snapcloud.query`` exactly as a fleet query does::

    from snapcloud.promql import Evaluator, StoreSource

    ev = Evaluator(StoreSource(repo))
    value = ev.range("avg by (host) (snapcloud_gpu_power_avg_mw)", start_ns, end_ns, 60 * 10**9)
"""

from __future__ import annotations

from snapcloud.promql._ast import AGGREGATIONS, RANGE_FUNCTIONS, LabelMatch, VectorSelector, parse
from snapcloud.promql._engine import (
    DEFAULT_LOOKBACK_NS,
    STALE_NAN_BITS,
    Evaluator,
    Limits,
    QueryValue,
    RawSeries,
    SeriesSource,
    StepSeries,
    is_stale,
)
from snapcloud.promql._names import PREFIX, MappedName, map_metric, series_labels
from snapcloud.promql._source import MetricMeta, SeriesInfo, StoreSource

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_LOOKBACK_NS",
    "PREFIX",
    "RANGE_FUNCTIONS",
    "STALE_NAN_BITS",
    "Evaluator",
    "LabelMatch",
    "Limits",
    "MappedName",
    "MetricMeta",
    "QueryValue",
    "RawSeries",
    "SeriesInfo",
    "SeriesSource",
    "StepSeries",
    "StoreSource",
    "VectorSelector",
    "is_stale",
    "map_metric",
    "parse",
    "series_labels",
]
