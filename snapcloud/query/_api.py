"""The fleet query entry points: plan, aggregate, read raw series.

Each call counts its own requests (a ``CountingStore`` over the repository's,
so ``Repository.requests()`` sees them too), owns one bounded thread pool for
index and object reads, and reports its figures in ``QueryStats``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field

from snapcloud.backends import CountingStore
from snapcloud.errors import ValidationError
from snapcloud.index import CatalogEntry
from snapcloud.models import ProfileSnapshot, SnapshotQuery
from snapcloud.progress import ProgressCallback, ProgressUpdate
from snapcloud.query._aggregate import Aggregator, SeriesCollector, check_aggregations
from snapcloud.query._aggregate import check_group_by as _check_group_by
from snapcloud.query._executor import Budget, fetch_plan
from snapcloud.query._planner import HostPlan, QueryPlan, plan_hosts, plan_stream
from snapcloud.query._result import QueryResult, QueryStats, SeriesSet
from snapcloud.query._selectors import GROUP_BUILTINS, Narrowing, Selector
from snapcloud.store import HostStream, Repository

__all__ = [
    "DEFAULT_WORKERS",
    "HostListing",
    "list_hosts",
    "plan_query",
    "read_series",
    "run_query",
    "scan",
]

DEFAULT_WORKERS = 16
#: Takes each selected snapshot; may return how many samples it held (else they are counted).
Consumer = Callable[[HostPlan, ProfileSnapshot], "int | None"]
#: Takes consecutive snapshots of one host, in order; returns how many samples they held.
BatchConsumer = Callable[[HostPlan, Sequence[ProfileSnapshot]], int]


def _check_workers(workers: int) -> int:
    if not isinstance(workers, int) or not 1 <= workers <= 256:
        raise ValidationError(f"workers: {workers!r} is not in 1..256", field="workers")
    return workers


@contextmanager
def _pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(
        max_workers=_check_workers(workers), thread_name_prefix="snapcloud-query"
    ) as pool:
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def plan_query(
    repo: Repository,
    selector: Selector,
    *,
    workers: int = DEFAULT_WORKERS,
    with_catalog: bool = False,
    narrow: Narrowing | None = None,
) -> QueryPlan:
    """What ``selector`` would read, from the catalog and index segments alone."""
    with _pool(workers) as pool:
        return plan_hosts(
            repo.objects, repo.config, selector, pool, with_catalog=with_catalog, narrow=narrow
        )


def scan(
    repo: Repository,
    selector: Selector,
    consumer: Consumer,
    *,
    budget: Budget | None = None,
    workers: int = DEFAULT_WORKERS,
    with_catalog: bool = False,
    many: BatchConsumer | None = None,
    narrow: Narrowing | None = None,
    progress: ProgressCallback | None = None,
) -> QueryStats:
    """Plan ``selector``, then feed each selected snapshot (trimmed) to ``consumer`` in
    host then seq order. Returns the query's figures. With ``many``, the snapshots of
    one compressed-tier object go to it in one call instead (in the same order).
    ``narrow`` adds host and metric predicates to the selector (``Narrowing``).
    ``progress`` hears of the snapshots read of those planned so far (the total grows
    while later hosts are planned) and the bytes read.

    Raises ``MemoryExceeded`` (never truncates), ``ObjectNotFound`` or ``CorruptError``.
    """
    t0 = time.perf_counter()
    objects = CountingStore(repo.objects)
    config = repo.config
    budget = budget or Budget(config.max_query_memory_bytes)
    samples = 0
    with _pool(workers) as pool:
        plan, incoming = plan_stream(
            objects, config, selector, pool, with_catalog=with_catalog, narrow=narrow
        )
        with closing(incoming):
            fetched = fetch_plan(objects, plan, incoming, pool, budget, max_inflight=2 * workers)
            done = 0
            for batch in fetched:
                done += len(batch)
                if many is not None and len(batch) > 1:
                    samples += many(batch[0].host, [got.snapshot for got in batch])
                else:
                    for got in batch:
                        taken = consumer(got.host, got.snapshot)
                        samples += got.snapshot.sample_count if taken is None else taken
                if progress is not None:
                    read = objects.bytes_moved()["bytes_read"]
                    progress(
                        ProgressUpdate("snapshots", done, plan.snapshots, read, batch[0].host.host)
                    )
            t_plan = plan.planned_at
    decoded = sum(
        sum(e.samples for e in hp.entries) + sum(e.samples for e in hp.bases.values())
        for hp in plan.hosts
    )
    return QueryStats(
        hosts=len(plan.hosts),
        hosts_considered=plan.hosts_considered,
        snapshots=plan.snapshots,
        objects=plan.objects,
        bytes_read=objects.bytes_moved()["bytes_read"],
        requests=objects.counts(),
        min_requests=plan.min_requests,
        samples_decoded=decoded,
        samples=samples,
        seconds=time.perf_counter() - t0,
        plan_seconds=t_plan - t0,
        warnings=plan.warnings(),
    )


def run_query(
    repo: Repository,
    selector: Selector,
    *,
    aggs: Sequence[str] = ("mean",),
    group_by: Sequence[str] = (),
    step_ns: int | None = None,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> QueryResult:
    """Aggregate the selected samples over time, per group (and time bucket).

    See ``snapcloud.query._aggregate`` (and docs/QUERY.md) for the exact semantics.
    Raises ``ValidationError`` for bad input, ``MemoryExceeded`` when percentiles
    would hold more samples than ``max_query_memory_bytes``.
    """
    aggs = check_aggregations(aggs)
    group_by = _check_group_by(group_by)
    budget = Budget(repo.config.max_query_memory_bytes)
    agg = Aggregator(aggs, group_by, step_ns, budget=budget)
    labels = any(g not in GROUP_BUILTINS for g in group_by)
    stats = scan(
        repo,
        selector,
        agg.add,
        budget=budget,
        workers=workers,
        with_catalog=labels,
        many=agg.add_many,
        progress=progress,
    )
    return QueryResult(
        columns=agg.columns(),
        rows=agg.rows(),
        stats=stats,
        aggs=aggs,
        group_by=group_by,
        step_ns=step_ns,
    )


def read_series(
    repo: Repository,
    selector: Selector,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> SeriesSet:
    """The raw selected samples, one series per (host, metric).

    Raises ``MemoryExceeded`` when they are over ``max_query_memory_bytes`` (16 B a sample).
    """
    budget = Budget(repo.config.max_query_memory_bytes)
    collector = SeriesCollector(budget)
    stats = scan(repo, selector, collector.add, budget=budget, workers=workers, progress=progress)
    return SeriesSet(collector.series(), stats)


def select_metrics(stream: HostStream, selector: Selector) -> tuple[list[str], list[str]]:
    """The metric names of one host ``stream`` that ``selector``'s patterns select in its
    time range (sorted), and a warning for each pattern that selects none there."""
    span = stream.serving(SnapshotQuery(start_ns=selector.start_ns, end_ns=selector.end_ns))
    present = {name for found, _ in span for name in found}
    hits = selector.patterns_matching(present)
    warnings = [
        f"--metric {p!r} matched no metric of {stream.host!r} in the time range"
        for p in selector.metrics
        if p not in hits
    ]
    return selector.metric_names(present), warnings


@dataclass
class HostListing:
    """The fleet as the catalog sees it: matching entries, and hosts with data but no entry."""

    entries: list[CatalogEntry]
    uncataloged: list[str]
    refreshed: list[str]
    #: What in the selector matched nothing (a host glob, the label matchers).
    warnings: list[str] = field(default_factory=list)


def list_hosts(
    repo: Repository,
    selector: Selector | None = None,
    *,
    refresh: bool = False,
    workers: int = DEFAULT_WORKERS,
) -> HostListing:
    """Catalog entries of the hosts ``selector`` picks (host globs and label matchers).

    With ``refresh``, every host with an index first has its entry rebuilt
    (``Repository.refresh_catalog``). Hosts with data but no entry match on
    ``host`` alone and are listed in ``uncataloged``.
    """
    selector = selector or Selector()
    every = repo.hosts()
    indexed = [h for h in every if selector.host_matches(h)]
    refreshed: list[str] = []
    with _pool(workers) as pool:
        if refresh:
            list(pool.map(repo.refresh_catalog, indexed))
            refreshed = list(indexed)
        catalog = repo.catalog()
        names = [h for h in catalog.hosts() if selector.host_matches(h)]
        found = [e for e in pool.map(catalog.read, names) if e is not None]
    entries = [e for e in found if selector.labels_match(e.host, e.all_labels())]
    have = {e.host for e in found}
    uncataloged = [h for h in indexed if h not in have and selector.labels_match(h, {})]
    warnings = selector.unmatched_hosts(sorted(set(every) | set(catalog.hosts())))
    considered = len(have | set(indexed))
    if selector.where and considered and not entries and not uncataloged:
        warnings.append(selector.where_unmatched(considered))
    return HostListing(entries, uncataloged, refreshed, warnings)
