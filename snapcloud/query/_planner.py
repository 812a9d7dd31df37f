"""Plan a fleet query from the catalog and the index alone: no data object is listed or read.

Hosts come from one listing of ``index/`` (every stream with data); when the
selector has label matchers the catalog entries of the hosts that pass the host
globs are read too (a host without an entry has no labels but ``host``). For
each remaining host, in parallel: the index segments the time range needs (one
read per segment; compressed and archive items and range-hinted raw groups
outside the range are skipped by their keys), the metric patterns resolved
against the names of the entries in range, those entries, and the keyframes
their deltas need.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from functools import cached_property

from snapcloud.backends import ObjectInfo, ObjectStore
from snapcloud.errors import MemoryExceeded, ValidationError
from snapcloud.index import Catalog, CatalogEntry, IndexEntry
from snapcloud.layout import INDEX_PREFIX, MARKS_PREFIX
from snapcloud.models import SnapshotConfig, SnapshotQuery
from snapcloud.query._selectors import Narrowing, Selector, is_glob
from snapcloud.store import HostStream
from snapcloud.timeparse import format_ns

__all__ = ["HostPlan", "QueryPlan", "Unit", "plan_hosts", "plan_stream", "tier_of"]

log = logging.getLogger(__name__)


def tier_of(entry: IndexEntry) -> str:
    """The retention tier an entry's object lives in (its key's first segment)."""
    return entry.key.split("/", 1)[0]


@dataclass(frozen=True)
class Unit:
    """Objects read and decoded together: a raw keyframe group, or one tier object."""

    tier: str
    entries: list[IndexEntry]  # raw: the keyframe first, then the planned deltas
    outputs: list[bool]  # whether each entry's snapshot is part of the answer

    @property
    def first_seq(self) -> int:
        return self.entries[0].seq


@dataclass(frozen=True)
class HostPlan:
    """What one host contributes: its labels, resolved metric names, the objects to read."""

    host: str
    labels: dict[str, str]
    user_labels: dict[str, str]
    metrics: tuple[str, ...]
    entries: tuple[IndexEntry, ...]
    bases: dict[int, IndexEntry]
    segments_read: int
    stream: HostStream | None = field(default=None, compare=False, repr=False)
    #: The metric patterns that named a metric in the time range, and whether any entry
    #: there passed the fingerprint pattern (what the query can say matched nothing).
    metric_hits: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    has_data: bool = field(default=False, compare=False, repr=False)
    fingerprint_hit: bool = field(default=True, compare=False, repr=False)
    planned_at: float = field(default_factory=time.perf_counter, compare=False, repr=False)

    @cached_property
    def wanted(self) -> frozenset[str]:
        """The resolved metric names, as a set (built once: the executor asks per object)."""
        return frozenset(self.metrics)

    @property
    def objects(self) -> int:
        """Objects to read: planned raw snapshots, keyframes needed only as bases, and
        each compressed-tier object once."""
        raw = sum(tier_of(e) == "raw" for e in self.entries)
        tiered = {e.key for e in self.entries if tier_of(e) != "raw"}
        return raw + len(self.bases) + len(tiered)

    @property
    def stored_bytes(self) -> int:
        """Bytes those objects hold in storage (a tier object's entries share its bytes)."""
        return sum(e.stored_bytes for e in self.entries) + sum(
            e.stored_bytes for e in self.bases.values()
        )

    def check_memory(self, limit: int) -> None:
        """Raise ``MemoryExceeded`` when one of this host's snapshots and its keyframe
        together are over ``limit`` (before any of its objects is read)."""
        for unit in self.units():
            first, rest = unit.entries[0], unit.entries[1:]
            need = first.raw_bytes + max((d.raw_bytes for d in rest), default=0)
            if need > limit:
                raise MemoryExceeded(
                    f"snapshots from {first.seq} of host {self.host!r} need {need} bytes "
                    f"decoded, over the query memory limit of {limit} bytes",
                    host=self.host,
                    seq=first.seq,
                )

    def units(self) -> list[Unit]:
        """The planned entries as read units, in seq order."""
        planned = {e.seq for e in self.entries if tier_of(e) == "raw"}
        raw: dict[int, list[IndexEntry]] = {}
        tiered: dict[str, list[IndexEntry]] = {}
        for e in self.entries:
            if tier_of(e) == "raw":
                raw.setdefault(e.base, []).append(e)
            else:
                tiered.setdefault(e.key, []).append(e)
        units = []
        for base, members in raw.items():
            keyframe = next((e for e in members if e.seq == base), None) or self.bases[base]
            deltas = [e for e in members if e.seq != base]
            units.append(Unit("raw", [keyframe, *deltas], [base in planned] + [True] * len(deltas)))
        for members in tiered.values():
            units.append(Unit(tier_of(members[0]), members, [True] * len(members)))
        return sorted(units, key=lambda u: u.first_seq)


@dataclass
class QueryPlan:
    """The hosts, index entries and request counts of a query, before any data object is read."""

    selector: Selector
    hosts: list[HostPlan]
    hosts_considered: int = 0
    catalog_reads: int = 0
    segment_reads: int = 0
    uncataloged: list[str] = field(default_factory=list)
    #: ``time.perf_counter()`` when the last host added was planned (or the plan made).
    planned_at: float = field(default_factory=time.perf_counter)
    #: Host globs and label matchers that selected nothing (found before planning).
    unmatched: list[str] = field(default_factory=list)
    hosts_planned: int = 0
    metric_hits: set[str] = field(default_factory=set)
    has_data: bool = False
    fingerprint_hit: bool = False

    @property
    def objects(self) -> int:
        """Data objects the query reads."""
        return sum(h.objects for h in self.hosts)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the data objects the query reads."""
        return sum(h.stored_bytes for h in self.hosts)

    @property
    def snapshots(self) -> int:
        """Snapshots that hold selected samples."""
        return sum(len(h.entries) for h in self.hosts)

    @property
    def min_requests(self) -> int:
        """The fewest requests the layout allows: catalog and segment reads plus one per object."""
        return self.catalog_reads + self.segment_reads + self.objects

    def add(self, host: HostPlan) -> None:
        """Count ``host``'s segment reads and keep it when it has entries to read."""
        self.segment_reads += host.segments_read
        self.planned_at = max(self.planned_at, host.planned_at)
        self.hosts_planned += 1
        self.metric_hits |= host.metric_hits
        self.has_data |= host.has_data
        self.fingerprint_hit |= host.fingerprint_hit
        if host.entries:
            self.hosts.append(host)

    def warnings(self) -> list[str]:
        """What in the selector matched nothing, one sentence each (once every host added)."""
        out = list(self.unmatched)
        if not self.hosts_planned:
            return out
        if not self.has_data:
            return [*out, "the selected host(s) hold no data in the time range"]
        sel = self.selector
        out += [
            f"--metric {p!r} matched no metric of the selected host(s) in the time range"
            for p in sel.metrics
            if p not in self.metric_hits
        ]
        if sel.fingerprint is not None and not self.fingerprint_hit:
            out.append(f"--fingerprint {sel.fingerprint!r} matched no snapshot")
        return out


def _plan_host(
    objects: ObjectStore,
    config: SnapshotConfig,
    selector: Selector,
    host: str,
    entry: CatalogEntry | None,
    listed: tuple[list[str], list[ObjectInfo]] | None = None,
    narrow: Narrowing | None = None,
) -> HostPlan:
    stream = HostStream(objects, host, config)
    if listed is not None:
        stream.seed_listing(*listed)
    # Only the index the time range needs is read (range hints and tier keys skip the
    # rest), and metric patterns resolve against the names found there, the exact
    # names asked for and the catalog's (when it was read for labels).
    span = stream.serving(SnapshotQuery(start_ns=selector.start_ns, end_ns=selector.end_ns))
    present: set[str] = set()
    for found, _ in span:
        present.update(found)
    names = present | {p for p in selector.metrics if not is_glob(p)}
    if entry is not None:
        names.update(entry.metrics)
    metrics = tuple(selector.metric_names(names))
    if narrow is not None and narrow.metric is not None:
        labels = entry.all_labels() if entry else {}
        metrics = tuple(m for m in metrics if narrow.metric(host, labels, m))
    wanted = set(metrics)
    planned = [
        e
        for found, e in span
        if not wanted.isdisjoint(found) and selector.fingerprint_matches(e.fingerprint)
    ]
    archived = [e for e in planned if tier_of(e) == "archive"]
    if archived:
        raise ValidationError(
            f"the selection reaches host {host!r}'s archive tier (downsampled, before "
            f"{format_ns(max(e.window_end for e in archived))}), which fleet queries do not "
            "read yet; start the range later",
            field="start",
            host=host,
        )
    seqs = {e.seq for e in planned}
    bases = {
        e.base: stream.entry(e.base)
        for e in planned
        if tier_of(e) == "raw" and e.kind == "d" and e.base not in seqs
    }
    return HostPlan(
        host=host,
        labels=entry.all_labels() if entry else {},
        user_labels=dict(entry.user_labels) if entry else {},
        metrics=metrics,
        entries=tuple(planned),
        bases=bases,
        segments_read=stream.segment_reads,
        stream=stream,
        metric_hits=frozenset(selector.patterns_matching(present)),
        has_data=bool(span),
        fingerprint_hit=any(selector.fingerprint_matches(e.fingerprint) for _, e in span),
    )


def _fleet_listing(
    objects: ObjectStore, selector: Selector
) -> dict[str, tuple[list[str], list[ObjectInfo]]] | None:
    """For a selection of every host: one listing of ``marks/deletions/`` and one of
    ``index/`` (1000 keys a page) instead of two listings per host; ``None`` when the
    selection names hosts (then each host's own two listings read less).

    Marks are listed first, as a single stream does (``HostStream``).
    Returns ``{host: (mark keys, index listing)}``.
    """
    if selector.hosts:
        return None
    by_host: dict[str, tuple[list[str], list[ObjectInfo]]] = {}
    marks: dict[str, list[str]] = {}
    for info in objects.list(MARKS_PREFIX):
        host = info.key[len(MARKS_PREFIX) :].partition("/")[0]
        marks.setdefault(host, []).append(info.key)
    for info in objects.list(INDEX_PREFIX):
        host, sep, _ = info.key[len(INDEX_PREFIX) :].partition("/")
        if sep:
            by_host.setdefault(host, (marks.get(host, []), []))[1].append(info)
    return by_host


@dataclass
class _Selection:
    """The hosts a query considers, before any index segment is read."""

    plan: QueryPlan
    hosts: list[str]
    entries: dict[str, CatalogEntry]
    fleet: dict[str, tuple[list[str], list[ObjectInfo]]] | None
    narrow: Narrowing | None = None

    def plan_host(self, objects: ObjectStore, config: SnapshotConfig, host: str) -> HostPlan:
        listed = None if self.fleet is None else self.fleet[host]
        return _plan_host(
            objects,
            config,
            self.plan.selector,
            host,
            self.entries.get(host),
            listed,
            self.narrow,
        )


def _select(
    objects: ObjectStore,
    selector: Selector,
    pool: Executor,
    with_catalog: bool,
    narrow: Narrowing | None = None,
) -> _Selection:
    """List the fleet (or the hosts the globs pick) and, for label matchers (or a host
    narrowing), read and match the catalog entries."""
    host_ok = narrow.host if narrow is not None else None
    fleet = _fleet_listing(objects, selector)
    if fleet is not None:
        every = sorted(fleet)
    else:
        every = sorted(h.rstrip("/") for h in objects.list_dirs(INDEX_PREFIX))
    hosts = [h for h in every if selector.host_matches(h)]
    entries: dict[str, CatalogEntry] = {}
    plan = QueryPlan(selector=selector, hosts=[], hosts_considered=len(hosts))
    plan.unmatched = selector.unmatched_hosts(every)
    if (selector.needs_labels or with_catalog or host_ok is not None) and hosts:
        catalog = Catalog(objects)
        listed = set(catalog.hosts())
        wanted = [h for h in hosts if h in listed]
        found = list(pool.map(catalog.read, wanted))
        plan.catalog_reads = len(wanted)
        entries = {e.host: e for e in found if e is not None}
        plan.uncataloged = [h for h in hosts if h not in entries]
        if plan.uncataloged:
            log.warning(
                "%d host(s) have no catalog entry and are matched on 'host' alone: %s "
                "(refresh the catalog: snapcloud hosts --refresh)",
                len(plan.uncataloged),
                ", ".join(plan.uncataloged[:5]) + (" ..." if len(plan.uncataloged) > 5 else ""),
            )
        labels_of = {h: entries[h].all_labels() if h in entries else {} for h in hosts}
        before = len(hosts)
        hosts = [
            h
            for h in hosts
            if selector.labels_match(h, labels_of[h])
            and (host_ok is None or host_ok(h, labels_of[h]))
        ]
        if selector.where and not hosts:
            plan.unmatched.append(selector.where_unmatched(before))
    return _Selection(plan, hosts, entries, fleet, narrow)


def plan_hosts(
    objects: ObjectStore,
    config: SnapshotConfig,
    selector: Selector,
    pool: Executor,
    *,
    with_catalog: bool = False,
    narrow: Narrowing | None = None,
) -> QueryPlan:
    """Plan ``selector`` over the store, reading index data in parallel on ``pool``.

    ``with_catalog`` reads catalog entries even without label matchers (to group by
    a user label); ``narrow`` adds the caller's host and metric predicates. Raises
    what reading an index segment raises (``CorruptError``...).
    """
    sel = _select(objects, selector, pool, with_catalog, narrow)
    for hp in pool.map(lambda h: sel.plan_host(objects, config, h), sel.hosts):
        sel.plan.add(hp)
    return sel.plan


def plan_stream(
    objects: ObjectStore,
    config: SnapshotConfig,
    selector: Selector,
    pool: Executor,
    *,
    with_catalog: bool = False,
    lookahead: int = 8,
    narrow: Narrowing | None = None,
) -> tuple[QueryPlan, Generator[Future[HostPlan], None, None]]:
    """Plan ``selector`` host by host, so that reading can start before planning ends.

    Returns the plan (hosts considered, catalog reads; the executor adds each host
    as it takes it, ``QueryPlan.add``) and the hosts' plans as futures in host
    order. Each host is planned on ``pool`` at most ``lookahead`` hosts ahead of
    the one taken last, so planning tasks and object reads share the pool's queue
    instead of every host's planning running first. ``narrow``: as ``plan_hosts``.
    """
    sel = _select(objects, selector, pool, with_catalog, narrow)

    def futures() -> Generator[Future[HostPlan], None, None]:
        ahead: deque[Future[HostPlan]] = deque()
        todo = iter(sel.hosts)
        try:
            for host in todo:
                ahead.append(pool.submit(sel.plan_host, objects, config, host))
                if len(ahead) > lookahead:
                    yield ahead.popleft()
            while ahead:
                yield ahead.popleft()
        finally:
            for f in ahead:
                f.cancel()

    return sel.plan, futures()
