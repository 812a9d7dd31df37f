"""The compactor: moves keyframe groups through the retention tiers, idempotent and crash-safe.

One run, per host, in this order (docs/RETENTION.md has the why):

1. hard-delete every due mark: its index keys, then its data keys, then the mark
   (an orphan mark's keys are checked again first);
2. raw -> compressed: each sealed raw group past ``raw_max_age`` is rewritten as one
   lossless object (checked to decode to the same checksums), then indexed;
3. -> archive: each stretch of one UTC day's served groups, all past
   ``compressed_max_age``, is downsampled into one object, then indexed;
4. items past ``archive_max_age`` get an *expired* mark;
5. every item a higher tier now supersedes gets a *superseded* mark;
6. data objects no index names that provably lost a race or that a tier holds get an
   orphan mark (deleted after ``orphan_age``); any other (a *lost entry*: it may be
   acknowledged data whose index entry was lost) is reported and never deleted, and a
   raw group with lost entries is not compacted until ``verify --repair`` indexes them;
7. each sealed raw group still served raw gets a range hint (an empty object whose
   key carries its time range and its segment's ETag), so queries of other times
   skip its segment; hints whose segment changed or went away are deleted;
8. each host's catalog entry is rebuilt from its index (as ``hosts --refresh`` does,
   keeping its labels) and written, stamped with ``now``, when it differs from the
   stored one: the fleet catalog counts each tier as it now is (a host with nothing
   left keeps an entry with no tiers: the compactor writes entries, never deletes
   them). This reads the host's index once more (listings and
   segments); its requests are not in the report's counts (a dry run could not plan
   them: they read what the run wrote). ``HostReport.catalog_refreshed`` says which
   entries were written.

Every write is deterministic (same keys, same bytes for the same input and
``now``) and every mark is written only after the index that supersedes its
item, so a run killed anywhere and run again converges to the same state, and
readers always see each group in exactly one tier. A second compactor is
refused by a lease on ``marks/leases/compactor.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from snapcloud import codec
from snapcloud.backends import CountingStore, ObjectStore
from snapcloud.codec import decode_archive, decode_compressed, encode_archive, encode_compressed
from snapcloud.coordination import DeletionMark, Lease, dead_local_holder, default_owner
from snapcloud.errors import (
    ChecksumMismatch,
    CorruptError,
    ObjectNotFound,
    PreconditionFailed,
    SnapcloudError,
)
from snapcloud.index import Catalog, CatalogEntry, TierSegment, entry_from_index
from snapcloud.layout import (
    COMPACTOR_LEASE_KEY,
    INDEX_PREFIX,
    MARKS_PREFIX,
    Tier,
    TierItem,
    mark_key,
    orphan_mark_key,
    parse_data_key,
    parse_tier_data_key,
    range_hint_key,
    tier_data_key,
    tier_index_key,
)
from snapcloud.models import ProfileSnapshot, SnapshotConfig, SnapshotQuery, validate_host
from snapcloud.progress import ProgressCallback, ProgressUpdate
from snapcloud.retention._downsample import Downsampler
from snapcloud.retention._policy import RetentionPolicy
from snapcloud.retention._report import CompactionReport, HostReport
from snapcloud.retention._state import GroupInfo, HostState, load_state
from snapcloud.store import HostStream, SeqIndex

__all__ = ["Compactor"]

log = logging.getLogger(__name__)

StepHook = Callable[[int, str], None]


@dataclass
class _Mark:
    key: str
    mark: DeletionMark


@dataclass
class _Plan:
    """One host's actions, decided from its state before anything is written."""

    deletes: list[_Mark] = field(default_factory=list)
    compress: list[GroupInfo] = field(default_factory=list)
    archive: list[list[GroupInfo]] = field(default_factory=list)
    marks: list[_Mark] = field(default_factory=list)
    orphans: _Mark | None = None


class _Steps:
    """Counts mutating requests; renews the lease; calls the ``on_step`` hook."""

    def __init__(self, hook: StepHook | None, lease: Lease | None) -> None:
        self.n = 0
        self.hook = hook
        self.lease = lease

    def __call__(self, label: str) -> None:
        self.n += 1
        if self.lease is not None:
            self.lease.keep()
        if self.hook is not None:
            self.hook(self.n, label)


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights``; the shares add up to ``total`` exactly."""
    whole = sum(weights)
    if not weights:
        return []
    shares = [total * w // whole for w in weights] if whole > 0 else [0] * len(weights)
    last = max((i for i, w in enumerate(weights) if w > 0), default=len(weights) - 1)
    shares[last] += total - sum(shares)
    return shares


class Compactor:
    """Runs the retention policy over a store (``run``), or plans it (``dry_run=True``)."""

    def __init__(
        self,
        objects: ObjectStore,
        config: SnapshotConfig | None = None,
        policy: RetentionPolicy | None = None,
        *,
        lease_ttl_s: float = 600.0,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        on_step: StepHook | None = None,
    ) -> None:
        self.config = config or SnapshotConfig()
        self.policy = policy or RetentionPolicy.from_config(self.config)
        self.raw_objects = objects
        self.lease_ttl_s = lease_ttl_s
        self.owner = owner
        self.clock = clock
        self.on_step = on_step

    def __repr__(self) -> str:
        return f"Compactor({self.raw_objects.description!r})"

    def hosts(self) -> list[str]:
        """Hosts with an index or pending marks."""
        found = {h.rstrip("/") for h in self.raw_objects.list_dirs(INDEX_PREFIX)}
        found |= {h.rstrip("/") for h in self.raw_objects.list_dirs(MARKS_PREFIX)}
        return sorted(found)

    def run(
        self,
        now_ns: int | None = None,
        hosts: Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        progress: ProgressCallback | None = None,
    ) -> CompactionReport:
        """Compact ``hosts`` (default: all) as of ``now_ns`` (default: the wall clock).

        ``progress`` hears of each host done and the bytes written so far.

        ``dry_run`` reads and encodes as a run would but writes nothing; its report
        holds the objects and bytes a run would write, mark and delete, and the
        requests it would make. Raises ``LeaseHeld`` when another compactor runs,
        ``BackendError`` when storage fails (rerun: the run resumes where it stopped).
        """
        now = time.time_ns() if now_ns is None else now_ns
        started = time.perf_counter()
        counting = CountingStore(self.raw_objects)
        lease = None
        if not dry_run:
            lease = Lease(
                self.raw_objects,
                COMPACTOR_LEASE_KEY,
                self.owner or default_owner(),
                self.lease_ttl_s,
                self.clock,
            )
            # a compactor killed on this machine is taken over at once, not after its TTL
            lease.acquire(steal_if=dead_local_holder)
        report = CompactionReport(now_ns=now, dry_run=dry_run)
        would: dict[str, int] = {}
        try:
            steps = _Steps(self.on_step, lease)
            names = [validate_host(h, "--host") for h in hosts] if hosts else self.hosts()
            for i, host in enumerate(names, 1):
                run = _HostRun(self, counting, host, now, steps, dry_run, would)
                done = run.execute()
                report.hosts.append(done)
                if not dry_run:  # its requests are the catalog's, not the tiers'
                    self._refresh_catalog(self.raw_objects, done, now)
                if progress is not None:
                    written = sum(t.written_bytes for t in report.totals().values())
                    progress(ProgressUpdate("hosts", i, len(names), written, host))
        finally:
            if lease is not None:
                lease.release()
        report.requests = dict(counting.counts())
        for op, n in would.items():
            report.requests[op] = report.requests.get(op, 0) + n
        report.seconds = time.perf_counter() - started
        return report

    def _refresh_catalog(self, objects: ObjectStore, report: HostReport, now: int) -> None:
        """Step 8: rebuild the host's catalog entry from its index (its labels kept: no
        object read) and write it when it differs from the stored one but for its time,
        stamped with the run's ``now`` (a rerun writes the same bytes, or nothing). A
        failure is the report's problem, not the run's (``hosts --refresh`` mends it)."""
        host = report.host
        catalog = Catalog(objects, clock=lambda: now)
        try:
            previous = catalog.get(host)
            stream = HostStream(objects, host, self.config)
            items = stream.serving(SnapshotQuery())
            if not items and previous is None:
                return  # nothing stored, nothing catalogued
            if items:
                labels = previous.labels if previous else stream.read(items[-1][1]).labels
            else:  # every tier of it expired: the entry says so (the compactor never deletes it)
                labels = previous.labels if previous else {}
            fresh = entry_from_index(host, items, labels=labels, previous=previous)
            if previous is not None and _same_entry(fresh, previous):
                return
            catalog.refresh(host, items, labels=labels)
            report.catalog_refreshed = True
        except SnapcloudError as exc:
            report.problems.append(f"catalog entry not refreshed: {exc}")


def _same_entry(a: CatalogEntry, b: CatalogEntry) -> bool:
    return a.model_dump(exclude={"updated_ns"}) == b.model_dump(exclude={"updated_ns"})


class _HostRun:
    """One host's plan and its execution."""

    def __init__(
        self,
        compactor: Compactor,
        objects: CountingStore,
        host: str,
        now: int,
        steps: _Steps,
        dry_run: bool,
        would: dict[str, int],
    ) -> None:
        self.compactor = compactor
        self.policy = compactor.policy
        self.objects = objects
        self.host = host
        self.now = now
        self.steps = steps
        self.dry_run = dry_run
        self.would = would
        self.report = HostReport(host)
        self._failed: set[str] = set()
        self._refs_now: set[str] = set()
        self._seqs = SeqIndex()
        self._lost: dict[int, list[str]] = {}  # group base -> its lost entries

    # ------------------------------------------------------------------ requests

    def _put(self, key: str, data: bytes, label: str, *, if_absent: bool = False) -> bool:
        """Write (or, dry, count) one object; False when ``if_absent`` found it there."""
        self.report.tally(key).written_objects += 1
        self.report.tally(key).written_bytes += len(data)
        if self.dry_run:
            self.would["put"] = self.would.get("put", 0) + 1
            return True
        self.steps(label)
        try:
            self.objects.put(key, data, if_absent=if_absent)
        except PreconditionFailed:
            return False
        return True

    def _put_index(self, seg: TierSegment) -> None:
        """Write a tier segment once; an earlier attempt's copy is kept or, if it differs,
        replaced (we hold the lease: nobody else writes tier indexes)."""
        key, data = seg.index_key, seg.to_bytes()
        if self._put(key, data, f"put index {key}", if_absent=True):
            return
        got = self.objects.get(key)
        if got.data != data:
            log.warning("replacing tier index %s written by an earlier run", key)
            self.steps(f"replace index {key}")
            self.objects.put(key, data, if_match=got.etag)

    def _delete(self, key: str, size: int) -> None:
        tally = self.report.tally(key)
        tally.deleted_objects += 1
        tally.deleted_bytes += size
        if self.dry_run:
            self.would["delete"] = self.would.get("delete", 0) + 1
            return
        self.steps(f"delete {key}")
        self.objects.delete(key)

    # ------------------------------------------------------------------ plan

    def execute(self) -> HostReport:
        """Load the host's state, plan, and carry the plan out (or, dry, count it)."""
        state = load_state(self.objects, self.host)
        for key in state.bad_marks:
            self.report.problems.append(f"unreadable deletion mark {key} left in place")
        for key in state.bad_conflicts:
            self.report.problems.append(
                f"unreadable conflict record {key}: no raw object of this host is collected"
            )
        self._seqs = _seq_index(state)
        self._lost = self._lost_entries(state)
        plan = self._plan(state)
        self._refs_now = self._refs(state, plan)
        for m in plan.deletes:
            self._hard_delete(state, m)
        for g in plan.compress:
            self._guarded(g.label, self._compress, state, [g])
        done: list[list[GroupInfo]] = []
        for batch in plan.archive:
            if self._guarded(batch[0].label, self._archive, state, batch):
                done.append(batch)
        compressed = {g.first for g in plan.compress if g.label not in self._failed}
        for m in self._superseded(state, plan, compressed, done):
            plan.marks.append(m)
        for m in plan.marks:
            self._write_mark(state, m)
        if plan.orphans is not None:
            self._write_mark(state, plan.orphans)
        self._range_hints(state, {m.mark.first_seq for m in plan.marks if m.mark.tier == "raw"})
        return self.report

    def _range_hints(self, state: HostState, retired: set[int]) -> None:
        """Step 7: hint every sealed raw group that stays raw (not the open group, not one
        marked now or before); delete hints no segment vouches for (their segment was
        rewritten, retired or deleted since), and wrong ones."""
        last = state.raw_bases[-1] if state.raw_bases else None
        wanted: set[str] = set()
        for base, seg in state.raw.items():
            if base == last or base in retired or not seg.entries or base not in state.raw_etags:
                continue
            start = min(e.window_start for e in seg.entries)
            end = max(e.window_end for e in seg.entries)
            key = range_hint_key(self.host, base, start, end, state.raw_etags[base])
            if key is not None:
                wanted.add(key)
        for key in sorted(state.hints):
            if key not in wanted:
                self._delete(key, 0)
                self.report.range_hints_deleted += 1
        for key in sorted(wanted):
            if key not in state.hints and self._put(key, b"", f"put range hint {key}"):
                self.report.range_hints_written += 1

    def _guarded(
        self,
        label: str,
        action: Callable[[HostState, list[GroupInfo]], None],
        state: HostState,
        groups: list[GroupInfo],
    ) -> bool:
        """Run one transition; data that is missing or corrupt is reported, not fatal."""
        try:
            action(state, groups)
            return True
        except (ObjectNotFound, CorruptError) as exc:
            self._failed.add(label)
            self.report.problems.append(f"{label}: {exc}")
            log.error("host %s: %s skipped: %s", self.host, label, exc)
            return False

    def _plan(self, state: HostState) -> _Plan:
        plan = _Plan()
        plan.deletes = [_Mark(k, m) for k, m in sorted(state.marks.items()) if m.due(self.now)]
        served = [g for g in state.served() if not self._blocked(g)]
        target = {g.first: self.policy.target(g.end_ns, self.now) for g in served}
        plan.archive = self._batches(served, target)
        batched = {g.first for batch in plan.archive for g in batch}
        # A raw group due for the archive whose day is not complete yet is compressed meanwhile.
        plan.compress = [
            g
            for g in served
            if g.tier == "raw"
            and g.sealed
            and g.first not in batched
            and target[g.first] in ("compressed", "archive")
        ]
        for g in served:
            if target[g.first] == "gone" and g.sealed:
                plan.marks.append(self._mark(state, g, "expired", None))
                self.report.expired.append(g.label)
        plan.orphans = self._orphans(state, plan)
        return plan

    def _batches(self, served: list[GroupInfo], target: Mapping[int, str]) -> list[list[GroupInfo]]:
        """Stretches of consecutive served groups of one UTC day, all due for the archive."""
        stretches: list[list[GroupInfo]] = []
        for g in served:
            if g.tier == "archive" or not g.sealed or target[g.first] == "gone":
                stretches.append([])  # a separator: never part of a batch
                continue
            if stretches and stretches[-1] and stretches[-1][-1].day == g.day:
                stretches[-1].append(g)
            else:
                stretches.append([g])
        return [s for s in stretches if s and all(target[g.first] == "archive" for g in s)]

    def _mark(self, state: HostState, g: GroupInfo, reason: str, by: str | None) -> _Mark:
        index_keys, data_keys = state.keys_of(g)
        mark = DeletionMark(
            host=self.host,
            tier=g.tier,
            first_seq=g.first,
            last_seq=g.last,
            reason="expired" if reason == "expired" else "superseded",
            created_ns=self.now,
            delete_after_ns=self.now + self.policy.delete_delay_ns,
            superseded_by=by,
            index_keys=tuple(index_keys),
            data_keys=tuple(data_keys),
        )
        return _Mark(mark_key(self.host, g.tier, g.first, g.last), mark)

    def _superseded(
        self,
        state: HostState,
        plan: _Plan,
        compressed: set[int],
        archived: list[list[GroupInfo]],
    ) -> list[_Mark]:
        """Marks for every unmarked item a higher tier supersedes (now, or after this run)."""
        marked = state.view.marked
        covers: dict[tuple[str, int], str] = {}
        for a in state.view.archive:
            if ("archive", a.first) in marked:
                continue
            for c in state.view.compressed:
                if a.first <= c.first <= a.last:
                    covers[("compressed", c.first)] = a.key
            for b in state.raw_bases:
                if a.first <= b <= a.last:
                    covers[("raw", b)] = a.key
        for c in state.view.compressed:
            if ("compressed", c.first) not in marked:
                covers.setdefault(("raw", c.first), c.key)
        for g in plan.compress:
            if g.first in compressed:
                covers[("raw", g.first)] = self._index_key(state, "compressed", [g])
        for batch in archived:
            key = self._index_key(state, "archive", batch)
            for g in batch:
                covers[(g.tier, g.first)] = key
        out = []
        expiring = {(m.mark.tier, m.mark.first_seq) for m in plan.marks}
        items: dict[tuple[str, int], TierItem] = {
            (c.tier, c.first): c for c in state.view.compressed
        }
        for (tier, first), by in sorted(covers.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if (tier, first) in marked or (tier, first) in expiring:
                continue
            if tier == "raw":
                seg = state.raw.get(first)
                if seg is None or not seg.entries or first == state.raw_bases[-1]:
                    continue
                g = GroupInfo("raw", first, seg.entries[-1].seq, 0, 0, True)
            else:
                item = items[(tier, first)]
                g = GroupInfo(
                    item.tier, item.first, item.last, item.start_ns, item.end_ns, True, item
                )
            out.append(self._mark(state, g, "superseded", by))
        return out

    def _index_key(self, state: HostState, tier: Tier, groups: list[GroupInfo]) -> str:
        start = min(g.start_ns for g in groups)
        end = max(g.end_ns for g in groups)
        return tier_index_key(tier, self.host, groups[0].first, groups[-1].last, start, end)

    def _orphans(self, state: HostState, plan: _Plan) -> _Mark | None:
        """An orphan mark for data objects nothing names (raw: only below the next seq)."""
        refs = self._refs(state, plan)
        listed: set[str] = set()
        for m in state.marks.values():
            if m.tier == "orphans":
                listed.update(m.data_keys)
        found = [k for k in state.data_keys if k not in listed and self._orphan(state, k, refs)]
        if not found:
            return None
        mark = DeletionMark(
            host=self.host,
            tier="orphans",
            first_seq=0,
            last_seq=0,
            reason="orphan",
            created_ns=self.now,
            delete_after_ns=self.now + self.policy.orphan_age_ns,
            data_keys=tuple(found),
        )
        self.report.orphans_marked += len(found)
        return _Mark(orphan_mark_key(self.host, self.now), mark)

    def _refs(self, state: HostState, plan: _Plan) -> set[str]:
        """Every data key an index or a retire mark names, and the ones this run writes."""
        refs: set[str] = set()
        for seg in state.raw.values():
            refs.update(e.key for e in seg.entries)
        for m in state.marks.values():
            if m.tier != "orphans":
                refs.update(m.data_keys)
        for item in (*state.view.compressed, *state.view.archive):
            refs.add(tier_data_key(item.tier, self.host, item.first, item.last, item.start_ns))
        for g in plan.compress:
            refs.add(tier_data_key("compressed", self.host, g.first, g.last, g.start_ns))
        for batch in plan.archive:
            start = min(g.start_ns for g in batch)
            refs.add(tier_data_key("archive", self.host, batch[0].first, batch[-1].last, start))
        return refs

    def _orphan(self, state: HostState, key: str, refs: set[str]) -> bool:
        """Whether an object no index names is garbage (``snapcloud.store._orphans``): a
        raw one that lost a race or that a tier holds, below the next seq (at or past
        it, it may be an append in flight); a tier one whose seqs are served elsewhere."""
        if key in refs:
            return False
        raw = parse_data_key(key)
        if raw is not None:
            return (
                raw.host == self.host and raw.seq < state.next_seq and self._seqs.raw_garbage(key)
            )
        tier = parse_tier_data_key(key)
        if tier is None:
            return False  # not ours to judge; verify reports it
        ids = {(i.tier, i.first, i.last) for i in (*state.view.compressed, *state.view.archive)}
        return (
            (tier[0], tier[2], tier[3]) not in ids
            and tier[1] == self.host
            and self._seqs.tier_garbage(tier[2], tier[3])
        )

    def _lost_entries(self, state: HostState) -> dict[int, list[str]]:
        """Raw objects below the next seq that no index names and that are not garbage,
        by the group base they belong to; reported (never deleted)."""
        refs = self._refs(state, _Plan())
        lost: dict[int, list[str]] = {}
        for key in state.data_keys:
            raw = parse_data_key(key)
            if (
                raw is None
                or raw.host != self.host
                or raw.seq >= state.next_seq
                or key in refs
                or self._seqs.raw_garbage(key)
            ):
                continue
            lost.setdefault(raw.base, []).append(key)
        if lost:
            keys = sorted(k for ks in lost.values() for k in ks)
            self.report.problems.append(
                f"{len(keys)} object(s) no index names may be acknowledged data (lost "
                f"entries, first {keys[0]}); left in place: run snapcloud verify --repair"
            )
        return lost

    def _blocked(self, g: GroupInfo) -> bool:
        """A raw group with lost entries is not compacted: its index does not hold all
        its data, and compaction would retire the keyframe they need."""
        if g.tier != "raw" or g.first not in self._lost:
            return False
        self.report.problems.append(f"{g.label}: not compacted: it has lost entries")
        return True

    # ------------------------------------------------------------------ execute

    def _hard_delete(self, state: HostState, m: _Mark) -> None:
        """Index keys, then data keys (deltas before keyframes), then the mark (orphans: only
        keys still unnamed)."""
        mark = m.mark
        keys = list(mark.data_keys)
        if mark.tier == "orphans":
            keys = [k for k in keys if self._orphan(state, k, self._refs_now)]
            self.report.orphans_deleted += len(keys)
        for key in mark.index_keys:
            self._delete(key, state.size(key))
        # Deltas before keyframes: a run killed in between must never leave a delta
        # whose keyframe is gone (an undecodable object, which verify reports).
        keys.sort(key=lambda k: k.endswith(".k.snap"))
        for key in keys:
            self._delete(key, state.size(key))
        self._delete(m.key, state.size(m.key))
        self.report.marks_deleted += 1

    def _write_mark(self, state: HostState, m: _Mark) -> None:
        if self._put(m.key, m.mark.to_bytes(), f"put mark {m.key}", if_absent=True):
            self.report.marks_written += 1
        for key in (*m.mark.index_keys, *m.mark.data_keys):
            tally = self.report.tally(key)
            tally.marked_objects += 1
            tally.marked_bytes += state.size(key)

    def _read_raw(self, state: HostState, base: int) -> list[ProfileSnapshot]:
        """A raw group's snapshots, each checked against its index entry."""
        seg = state.raw[base]
        keyframes: dict[int, ProfileSnapshot] = {}
        out = []
        for e in seg.entries:
            data = self.objects.get(e.key).data
            snap = codec.decode(
                data,
                base=keyframes.get(e.base) if e.kind == "d" else None,
                max_decoded_size=self.compactor.config.max_decoded_bytes,
                key=e.key,
            )
            if snap.seq != e.seq or snap.checksum != e.checksum or snap.host != self.host:
                raise ChecksumMismatch(f"{e.key} does not hold what its index says", key=e.key)
            if e.kind == "k":
                keyframes[e.seq] = snap
            out.append(snap)
        return out

    def _read_group(self, state: HostState, g: GroupInfo) -> list[ProfileSnapshot]:
        if g.tier == "raw":
            return self._read_raw(state, g.first)
        assert g.item is not None
        key = tier_data_key("compressed", self.host, g.first, g.last, g.item.start_ns)
        snaps = decode_compressed(
            self.objects.get(key).data, key=key, max_decoded=self.compactor.config.max_decoded_bytes
        )
        return [snaps[s] for s in sorted(snaps)]

    def _compress(self, state: HostState, groups: list[GroupInfo]) -> None:
        """raw -> compressed: one lossless object, checked, then its index."""
        g = groups[0]
        snaps = self._read_raw(state, g.first)
        data = encode_compressed(
            self.host,
            snaps,
            level=self.policy.compressed_level,
            max_frame_bytes=self.policy.max_frame_bytes,
        )
        key = tier_data_key("compressed", self.host, g.first, g.last, g.start_ns)
        back = decode_compressed(data, key=key, max_decoded=self.compactor.config.max_decoded_bytes)
        if sorted(back) != [s.seq for s in snaps] or any(
            back[s.seq].checksum != s.checksum for s in snaps
        ):
            raise ChecksumMismatch(f"compressed {key} does not decode to its group", key=key)
        shares = _apportion(len(data), [s.raw_bytes for s in snaps])
        seg = TierSegment.build(
            host=self.host,
            tier="compressed",
            key=key,
            object_bytes=len(data),
            groups=[(g.first, g.last)],
            source_snapshots=len(snaps),
            source_samples=sum(s.sample_count for s in snaps),
            created_ns=self.now,
            rows=[(s, share, 0) for s, share in zip(snaps, shares, strict=True)],
            window=(g.start_ns, g.end_ns),
        )
        self._put(key, data, f"put compressed {key}")
        self._put_index(seg)
        self.report.compressed.append(g.label)
        self.report.samples_compacted += seg.source_samples

    def _archive(self, state: HostState, batch: list[GroupInfo]) -> None:
        """Groups of one day -> one downsampled archive object, checked, then its index."""
        ds = Downsampler(self.host, self.policy.resolutions_ns)
        for g in batch:
            ds.add(self._read_group(state, g))
        frames = ds.finish()
        groups = [(g.first, g.last) for g in batch]
        data = encode_archive(self.host, frames, groups, level=self.policy.archive_level)
        start = min(g.start_ns for g in batch)
        end = max(g.end_ns for g in batch)
        key = tier_data_key("archive", self.host, batch[0].first, batch[-1].last, start)
        back = decode_archive(data, key=key, max_decoded=self.compactor.config.max_decoded_bytes)
        if [s.checksum for _, s in back] != [s.checksum for _, s in frames]:
            raise ChecksumMismatch(f"archive {key} does not decode to its frames", key=key)
        finest = min(self.policy.resolutions_ns)
        weights = [s.raw_bytes if r == finest else 0 for r, s in frames]
        shares = _apportion(len(data), weights)
        seg = TierSegment.build(
            host=self.host,
            tier="archive",
            key=key,
            object_bytes=len(data),
            groups=groups,
            source_snapshots=ds.snapshots,
            source_samples=ds.samples,
            created_ns=self.now,
            rows=[(s, share, r) for (r, s), share in zip(frames, shares, strict=True)],
            window=(start, end),
        )
        self._put(key, data, f"put archive {key}")
        self._put_index(seg)
        self.report.archived.append(f"archive {batch[0].first}-{batch[-1].last}")
        self.report.samples_compacted += ds.samples


def _seq_index(state: HostState) -> SeqIndex:
    """What the host's indexes and retire marks say about seqs (the orphan rule's input)."""
    idx = SeqIndex(kept=set(state.kept), keep_all=bool(state.bad_conflicts))
    idx.list_objects(state.data_keys)
    for seg in state.raw.values():
        idx.name(e.key for e in seg.entries)
        if seg.entries:
            idx.raw_spans.append((seg.base, seg.entries[-1].seq))
    for m in state.marks.values():
        if m.tier == "orphans":
            continue
        idx.name(m.data_keys)
        if m.tier == "raw":
            idx.raw_spans.append((m.first_seq, m.last_seq))
    for item in (*state.view.compressed, *state.view.archive):
        idx.tier_spans.append((item.first, item.last))
    return idx
