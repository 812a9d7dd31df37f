"""A state machine over one host stream: appends (and appends that die or lose a race),
``verify --repair`` (the library call), the compactor with time moving on, and damage
to the index (a lost or rolled-back segment), interleaved in any order hypothesis finds.

After every step with an intact index, and after every repair: each acknowledged
snapshot reads back bit-exact at its seq, and no snapshot is stored twice. The one
exception is the case nothing can decide: the index lost and two objects for one seq
with no delta or catalog to tell them apart; then the acknowledged object must still
be stored, under a conflict record that keeps it from the compactor and keeps writers
off its seq. Appends are not made while the index is damaged: a writer appending onto
a rolled-back segment reuses acknowledged seqs, which nothing can tell from a lost
race (docs/RELIABILITY.md).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from snapcloud import codec
from snapcloud.backends import MemoryStore
from snapcloud.index import data_key, segment_key
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig
from snapcloud.retention import Compactor
from snapcloud.store import HostStream, verify_stream
from tests.retention.scenario import HOUR, T0

NS = 10**9
HOST = "m"
#: groups of 3; raw data older than 2 h is compressed; never archived (lossy by design)
CONFIG = SnapshotConfig(
    keyframe_interval=3,
    raw_max_age_ns=2 * HOUR,
    compressed_max_age_ns=10_000 * HOUR,
    archive_max_age_ns=20_000 * HOUR,
    delete_delay_ns=HOUR // 2,
)


def window(n: int) -> ProfileSnapshot:
    """Window ``n``: ten minutes, unique content (``n`` in its metadata)."""
    rng = np.random.default_rng(n)
    ts = T0 + n * 600 * NS + np.arange(10, dtype=np.int64) * 60 * NS
    return ProfileSnapshot(
        HOST,
        [MetricSeries("util", ts, np.round(rng.normal(50, 10, 10), 1))],
        window_start=int(ts[0]),
        window_end=int(ts[-1]) + 60 * NS,
        metadata={"n": n},
    )


class RepairMachine(RuleBasedStateMachine):
    """One stream; ``acked`` is what the stream acknowledged, seq -> snapshot."""

    @initialize()
    def setup(self) -> None:
        self.objects = MemoryStore()
        self.stream = HostStream(self.objects, HOST, CONFIG)
        self.acked: dict[int, ProfileSnapshot] = {}
        self.acked_keys: dict[int, str] = {}  # seq -> the data key of what was acknowledged
        self.next_n = 0
        self.now = T0
        self.damaged = False
        self.history: dict[int, list[bytes]] = {}  # base -> segment versions
        self.pending: ProfileSnapshot | None = None  # an append that died

    def _new(self) -> ProfileSnapshot:
        self.next_n += 1
        return window(self.next_n)

    def _acknowledge(self, entry_seq: int, snap: ProfileSnapshot) -> None:
        self.acked[entry_seq] = snap
        self.acked_keys[entry_seq] = self.stream.entry(entry_seq).key
        base = self.stream.entry(entry_seq).base
        self.history.setdefault(base, []).append(self.objects.get(segment_key(HOST, base)).data)

    @precondition(lambda self: not self.damaged)
    @rule(count=st.integers(1, 4))
    def append(self, count: int) -> None:
        for _ in range(count):
            snap = self._new()
            self._acknowledge(self.stream.append(snap).seq, snap)

    @precondition(lambda self: not self.damaged and self.pending is None)
    @rule()
    def append_dies_after_its_object(self) -> None:
        """The object lands, the segment write never happens (a crash)."""
        snap = self._new()
        seq = self.stream.next_seq
        at = snap.with_seq(seq)
        last = self.stream._last_segment()
        if last is None or len(last.entries) >= CONFIG.keyframe_interval:
            base, data = seq, codec.encode_keyframe(at)
        else:
            base = last.base
            data = codec.encode_delta(at, self.stream._keyframe(base))
        self.objects.put(data_key(HOST, seq, base, at.window_start, at.checksum), data)
        self.pending = snap

    @precondition(lambda self: not self.damaged and self.pending is not None)
    @rule()
    def retry_the_dead_append(self) -> None:
        """The writer retries: first it looks for its snapshot (as the recorder's uploader
        and ``import`` do after a failure), then appends it if it is not there."""
        snap, self.pending = self.pending, None
        assert snap is not None
        self.stream.refresh()
        for e in self.stream.entries():
            if e.checksum == snap.with_seq(e.seq).checksum:
                self.acked[e.seq] = snap  # a repair indexed it meanwhile
                self.acked_keys[e.seq] = e.key
                return
        self._acknowledge(self.stream.append(snap).seq, snap)

    @precondition(lambda self: not self.damaged and bool(self.acked))
    @rule(data=st.data())
    def lose_a_race(self, data: st.DataObject) -> None:
        """A second writer appended other content as an acknowledged seq and lost."""
        seq = data.draw(st.sampled_from(sorted(self.acked)))
        try:
            entry = self.stream.entry(seq)
        except Exception:
            return
        if entry.kind != "k" or not entry.key.startswith("raw/"):
            return  # a delta loser needs the keyframe's content: the keyframe case suffices
        loser = self._new().with_seq(seq)
        key = data_key(HOST, seq, seq, loser.window_start, loser.checksum)
        self.objects.put(key, codec.encode_keyframe(loser))

    @rule(data=st.data())
    def lose_a_segment(self, data: st.DataObject) -> None:
        bases = sorted(i for i in self.stream._group_bases())
        self.stream.refresh()
        if not bases:
            return
        base = data.draw(st.sampled_from(bases))
        self.objects.delete(segment_key(HOST, base))
        self.damaged = True

    @rule(data=st.data())
    def roll_a_segment_back(self, data: st.DataObject) -> None:
        self.stream.refresh()
        live = [b for b in self.stream._group_bases() if len(self.history.get(b, [])) > 1]
        if not live:
            return
        base = data.draw(st.sampled_from(live))
        old = data.draw(st.sampled_from(self.history[base][:-1]))
        self.objects.put(segment_key(HOST, base), old)
        self.damaged = True

    @rule()
    def repair(self) -> None:
        verify_stream(HostStream(self.objects, HOST, CONFIG), repair=True)
        self.stream.refresh()
        self.damaged = False
        self.check_acknowledged()

    @rule(hours=st.integers(0, 4))
    def compact(self, hours: int) -> None:
        self.now += hours * HOUR
        last = max((s.window_end for s in self.acked.values()), default=T0)
        Compactor(self.objects, CONFIG).run(now_ns=max(self.now, last))
        self.stream.refresh()

    @invariant()
    def acknowledged_snapshots_read_back_once(self) -> None:
        if not self.damaged:
            self.check_acknowledged()

    def check_acknowledged(self) -> None:
        stream = HostStream(self.objects, HOST, CONFIG)
        entries = list(stream.entries())
        seqs = [e.seq for e in entries]
        assert len(seqs) == len(set(seqs)), f"a seq is served twice: {seqs}"
        served = {e.seq for e in entries}
        for seq, want in self.acked.items():
            if seq not in served and self._recorded(seq):
                continue  # undecidable after the index was lost: kept, not indexed
            got = stream.get(seq)
            assert got == want.with_seq(seq), f"acknowledged seq {seq} differs"
            assert got.checksum == want.with_seq(seq).checksum
        ns = [stream.get(e.seq).metadata["n"] for e in entries]
        assert len(ns) == len(set(ns)), f"a snapshot is stored twice: {ns}"

    def _recorded(self, seq: int) -> bool:
        """Whether a conflict record keeps the acknowledged object of ``seq`` (stored)."""
        from snapcloud.coordination import ConflictRecord
        from snapcloud.layout import conflict_key

        try:
            data = self.objects.get(conflict_key(HOST, seq)).data
        except Exception:
            return False
        key = self.acked_keys[seq]
        assert key in ConflictRecord.from_bytes(data).keys, f"seq {seq}: record lacks {key}"
        assert self.objects.head(key) is not None, f"acknowledged {key} was deleted"
        return True


RepairMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRepairMachine = RepairMachine.TestCase
