"""The writer lease: exclusive, renewed, taken over only stale, one winner of a race."""

from __future__ import annotations

import json
import threading

import pytest

from snapcloud.backends import GetResult, MemoryStore
from snapcloud.errors import LeaseHeld, PreconditionFailed, RetryableBackendError
from snapcloud.recorder import Backoff, Lease, LeaseKeeper, lease_key
from tests.recorder.fakes import FlakyStore

KEY = lease_key("node-1")
T0 = 1_767_225_600.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_acquire_writes_owner_and_expiry_and_renew_extends() -> None:
    store, clock = MemoryStore(), Clock()
    lease = Lease(store, KEY, "me", ttl_s=60, clock=clock)
    info = lease.acquire()
    assert KEY == "marks/leases/node-1.json"
    doc = json.loads(store.get(KEY).data)
    assert doc["owner"] == "me" and doc["acquired_at"] == T0 and doc["expires_at"] == T0 + 60
    assert doc["expires"] == "2026-01-01T00:01:00Z"
    assert info.etag == store.head(KEY).etag  # type: ignore[union-attr]
    assert lease.valid() and lease.renew_every_s == 20
    clock.now += 20
    lease.renew()
    assert json.loads(store.get(KEY).data)["expires_at"] == T0 + 80
    assert json.loads(store.get(KEY).data)["acquired_at"] == T0
    clock.now += 75  # past 90 % of the TTL since the last renewal: no longer safe to write
    assert lease.held and not lease.valid()


def test_second_owner_is_refused_with_the_holder_and_expiry() -> None:
    store, clock = MemoryStore(), Clock()
    Lease(store, KEY, "node-1:100:aaa", clock=clock).acquire()
    clock.now += 18
    with pytest.raises(LeaseHeld) as caught:
        Lease(store, KEY, "node-1:200:bbb", clock=clock).acquire()
    msg = str(caught.value)
    assert "node-1:100:aaa" in msg and "2026-01-01T00:01:00Z" in msg and "in 42 s" in msg
    assert caught.value.owner == "node-1:100:aaa"  # type: ignore[attr-defined]


def test_a_stale_lease_is_taken_over() -> None:
    store, clock = MemoryStore(), Clock()
    old = Lease(store, KEY, "old", ttl_s=60, clock=clock)
    old.acquire()
    clock.now += 61
    new = Lease(store, KEY, "new", ttl_s=60, clock=clock)
    new.acquire()
    assert json.loads(store.get(KEY).data)["owner"] == "new"
    with pytest.raises(LeaseHeld, match="lost: now held by owner 'new'"):
        old.renew()
    assert not old.held and not old.valid()
    assert old.release() is False  # never deletes someone else's lease
    assert store.head(KEY) is not None


def test_steal_if_takes_a_live_lease_from_a_holder_known_dead() -> None:
    store, clock = MemoryStore(), Clock()
    Lease(store, KEY, "crashed", clock=clock).acquire()
    Lease(store, KEY, "heir", clock=clock).acquire(steal_if=lambda h: h.owner == "crashed")
    assert json.loads(store.get(KEY).data)["owner"] == "heir"


class RaceStore(MemoryStore):
    """Holds each thread's first read of the lease until all have read it, so takers collide."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=5)
        self.armed = False
        self.passed: set[int] = set()

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        me = threading.get_ident()
        if self.armed and me not in self.passed:
            self.passed.add(me)
            self.barrier.wait()
        return super().get(key, byte_range=byte_range)


@pytest.mark.parametrize("stale", [True, False], ids=["stale-lease", "no-lease"])
def test_racing_takers_one_wins(stale: bool) -> None:
    takers = 4
    store, clock = RaceStore(takers), Clock()
    if stale:
        Lease(store, KEY, "dead", clock=clock).acquire()
        clock.now += 120
    store.armed = True
    results: dict[str, str] = {}

    def take(name: str) -> None:
        try:
            Lease(store, KEY, name, clock=clock).acquire()
            results[name] = "won"
        except LeaseHeld:
            results[name] = "refused"

    threads = [threading.Thread(target=take, args=(f"t{i}",)) for i in range(takers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results.values()) == ["refused"] * (takers - 1) + ["won"]
    store.armed = False
    winner = next(n for n, r in results.items() if r == "won")
    assert json.loads(store.get(KEY).data)["owner"] == winner


def test_release_deletes_only_our_lease() -> None:
    store, clock = MemoryStore(), Clock()
    lease = Lease(store, KEY, "me", clock=clock)
    lease.acquire()
    assert lease.release() is True
    assert store.head(KEY) is None
    assert lease.release() is False
    Lease(store, KEY, "next", clock=clock).acquire()  # free again at once


def test_renew_after_a_lost_reply_adopts_our_own_write() -> None:
    flaky, clock = FlakyStore(), Clock()
    lease = Lease(flaky, KEY, "me", clock=clock)
    lease.acquire()
    flaky.failing, flaky.fail_after_write = 1, True
    clock.now += 20
    with pytest.raises(RetryableBackendError):
        lease.renew()  # landed, but we never heard
    assert lease.held
    clock.now += 20
    lease.renew()  # if_match on the old ETag fails; the object is ours: adopt and go on
    assert json.loads(flaky.get(KEY).data)["expires_at"] == T0 + 100


def test_keeper_retries_a_down_store_then_reports_a_lost_lease() -> None:
    flaky, clock = FlakyStore(), Clock()
    lost: list[LeaseHeld] = []
    lease = Lease(flaky, KEY, "me", ttl_s=60, clock=clock)
    keeper = LeaseKeeper(lease, backoff=Backoff(1.0, 8.0), on_lost=lost.append)
    flaky.failing = 2
    d1, d2 = keeper.step(), keeper.step()
    assert d1 is not None and 0.5 <= d1 <= 1.0 and d2 is not None and 1.0 <= d2 <= 2.0
    assert not lease.held and keeper.first_attempt.is_set()
    assert "acquisition failed" in (keeper.last_problem or "")
    assert keeper.step() == 20.0 and lease.held
    # Someone else takes the lease once ours went stale (we were cut off for 2 minutes).
    clock.now += 120
    Lease(flaky, KEY, "usurper", clock=clock).acquire()
    assert keeper.step() is None
    assert len(lost) == 1 and "usurper" in str(lost[0])
    assert keeper.error is lost[0] and not lease.valid()
    assert keeper.step() is None


def test_backoff_is_capped_exponential_with_jitter() -> None:
    import random

    b = Backoff(0.5, 10.0, random.Random(1))
    delays = [b.delay(i) for i in range(10)]
    for i, d in enumerate(delays):
        top = min(10.0, 0.5 * 2**i)
        assert top / 2 <= d <= top
    assert len({round(d, 6) for d in delays}) == len(delays)
    assert max(delays) <= 10.0
    assert Backoff(0.5, 10.0).delay(10_000) <= 10.0


class _ReleaseReplyLost(MemoryStore):
    """The release marker's put lands, its reply is lost and the retry fails its if-match."""

    armed = False

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        etag = super().put(key, data, if_absent=if_absent, if_match=if_match)
        if self.armed and if_match is not None:
            self.armed = False
            raise PreconditionFailed(f"if-match failed on the retry of {key}", key=key)
        return etag


def test_release_whose_reply_was_lost_still_releases() -> None:
    """Found by the fault proxy: the retry of a landed release got 412 and release()
    reported the lease lost, leaving our own expired marker behind."""
    store, clock = _ReleaseReplyLost(), Clock()
    lease = Lease(store, KEY, "me", ttl_s=60, clock=clock)
    lease.acquire()
    store.armed = True
    assert lease.release() is True
    assert store.head(KEY) is None
    rival = Lease(store, KEY, "rival", ttl_s=60, clock=clock)
    rival.acquire()
    assert lease.release() is False  # not ours any more: left alone
    assert json.loads(store.get(KEY).data)["owner"] == "rival"
