"""Fleet-wide queries: select hosts, time, metrics; aggregate, plot, export.

Planning reads the catalog and index segments only; data objects are fetched in
parallel with a bounded pool and bounded memory, decoded, trimmed and folded
into streaming aggregations. See docs/QUERY.md.

    from snapcloud.query import Selector, LabelMatcher, run_query

    sel = Selector(metrics=("gpu.*.power_avg_mw",), where=(LabelMatcher.parse("cluster=a"),))
    result = run_query(repo, sel, aggs=("mean", "p99"), group_by=("host",))
"""

from __future__ import annotations

from snapcloud.query._aggregate import (
    AGGREGATIONS,
    COUNTER_AGGREGATIONS,
    PERCENTILES,
    Aggregator,
    SeriesCollector,
    check_aggregations,
)
from snapcloud.query._api import (
    DEFAULT_WORKERS,
    HostListing,
    list_hosts,
    plan_query,
    read_series,
    run_query,
    scan,
    select_metrics,
)
from snapcloud.query._executor import Budget, Fetched
from snapcloud.query._export import (
    EXPORT_MODES,
    FORMATS,
    TIME_FORMATS,
    ExportReport,
    export_parquet,
    format_result,
)
from snapcloud.query._planner import HostPlan, QueryPlan
from snapcloud.query._plot import (
    plot_figure,
    plot_series,
    series_from_result,
    unmatched_metrics,
)
from snapcloud.query._result import QueryResult, QueryStats, Series, SeriesSet
from snapcloud.query._selectors import (
    GROUP_BUILTINS,
    LabelMatcher,
    Narrowing,
    Selector,
    gpu_index,
    metric_field,
    time_range,
)

__all__ = [
    "AGGREGATIONS",
    "COUNTER_AGGREGATIONS",
    "DEFAULT_WORKERS",
    "EXPORT_MODES",
    "FORMATS",
    "GROUP_BUILTINS",
    "PERCENTILES",
    "TIME_FORMATS",
    "Aggregator",
    "Budget",
    "ExportReport",
    "Fetched",
    "HostListing",
    "HostPlan",
    "LabelMatcher",
    "Narrowing",
    "QueryPlan",
    "QueryResult",
    "QueryStats",
    "Selector",
    "Series",
    "SeriesCollector",
    "SeriesSet",
    "check_aggregations",
    "export_parquet",
    "format_result",
    "gpu_index",
    "list_hosts",
    "metric_field",
    "plan_query",
    "plot_figure",
    "plot_series",
    "read_series",
    "run_query",
    "scan",
    "select_metrics",
    "series_from_result",
    "time_range",
    "unmatched_metrics",
]
