"""The fleet catalog: entries from the index alone, checksums, updates that lose nothing."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from snapcloud.backends import CountingStore, MemoryStore, S3Store
from snapcloud.errors import (
    ChecksumMismatch,
    ConflictError,
    HostNotFound,
    PreconditionFailed,
    UnknownFormat,
    ValidationError,
)
from snapcloud.index import Catalog, CatalogEntry, catalog_key, entry_from_segments
from snapcloud.models import SnapshotConfig
from snapcloud.store import HostStream, Repository
from snapcloud.synth import host_snapshots
from tests.query.conftest import H100, Fleet

CONFIG = SnapshotConfig(keyframe_interval=4)


@pytest.fixture
def small_repo() -> Iterator[Repository]:
    repo = Repository(MemoryStore(), CONFIG)
    stream = repo.stream("gpu-node-0007", create=True)
    for s in host_snapshots(7, 6):
        stream.append(s)
    yield repo


def test_entry_from_segments_matches_stream_stats(small_repo: Repository) -> None:
    stream = small_repo.stream("gpu-node-0007")
    entry = entry_from_segments("gpu-node-0007", stream.segments(), labels={"a": "b"})
    st = stream.stats()
    raw = entry.tiers["raw"]
    assert (raw.snapshots, raw.keyframes, raw.samples, raw.segments) == (
        st.snapshots,
        st.keyframes,
        st.samples,
        st.segments,
    )
    assert (raw.stored_bytes, raw.raw_bytes) == (st.stored_bytes, st.raw_bytes)
    assert (entry.first_ns, entry.last_ns) == (st.first_ns, st.last_ns)
    assert entry.fingerprints == sorted(st.fingerprints)
    assert len(entry.metrics) == 113 and "gpu.7.power_avg_mw" in entry.metrics
    assert entry.labels == {"a": "b"} and entry.snapshots == 6


def test_refresh_reads_the_index_and_at_most_two_objects(fleet: Fleet) -> None:
    counting = CountingStore(fleet.repo.objects.inner)
    repo = Repository(counting, fleet.repo.config)
    keys: list[str] = []
    inner_get = counting.get

    def get(key: str, **kw: Any) -> Any:
        keys.append(key)
        return inner_get(key, **kw)

    counting.get = get  # type: ignore[method-assign]
    entry = repo.refresh_catalog("gpu-node-0004")
    data = [k for k in keys if k.startswith("raw/")]
    assert 1 <= len(data) <= 2  # the latest snapshot (its keyframe and itself) for labels
    # 12 snapshots, groups of 5: three segments, and the open group's once more inside the
    # conditional update (read after the entry it replaces, so a stale view never wins)
    assert sum(k.startswith("index/") for k in keys) == 4
    assert counting.counts()["put"] == 1
    assert entry.labels["gpu.model"] == H100 and entry.labels["rack"] == "r1"
    assert entry.tiers["raw"].snapshots == 12
    assert repo.catalog().get("gpu-node-0004") == entry


def test_refresh_keeps_user_labels_and_takes_given_labels(small_repo: Repository) -> None:
    host = "gpu-node-0007"
    catalog = small_repo.catalog()
    first = small_repo.refresh_catalog(host)
    assert first.labels["gpu.model"] == H100 and first.user_labels == {}
    catalog.set_user_labels(host, {"team": "vision", "tmp": "x"})
    catalog.set_user_labels(host, {"tmp": None})
    again = small_repo.refresh_catalog(host, labels={"driver": "550.54"})
    assert again.labels == {"driver": "550.54"}
    assert again.user_labels == {"team": "vision"}
    assert again.all_labels() == {"driver": "550.54", "team": "vision"}
    with pytest.raises(HostNotFound):
        small_repo.refresh_catalog("gpu-node-9999")
    with pytest.raises(ValidationError):
        catalog.set_user_labels(host, {"bad/name": "x"})
    with pytest.raises(ValidationError):
        catalog.set_user_labels(host, {"ok": "line\nbreak"})


def test_entry_bytes_carry_a_checksum(small_repo: Repository) -> None:
    entry = small_repo.refresh_catalog("gpu-node-0007")
    data = entry.to_bytes()
    assert CatalogEntry.from_bytes(data) == entry
    flipped = data.replace(b'"snapshots":6', b'"snapshots":7')
    assert flipped != data
    with pytest.raises(ChecksumMismatch, match="catalog/x"):
        CatalogEntry.from_bytes(flipped, key="catalog/x")
    with pytest.raises(UnknownFormat):
        CatalogEntry.from_bytes(data.replace(b'"version":1', b'"version":9'))
    small_repo.objects.put(catalog_key("gpu-node-0007"), flipped)
    with pytest.raises(ChecksumMismatch):
        small_repo.catalog().get("gpu-node-0007")


def test_concurrent_updates_on_the_moto_server_lose_nothing(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    objects = S3Store(bucket, "cat", endpoint_url=endpoint)
    host = "gpu-node-0042"
    stream = HostStream(objects, host, CONFIG)
    for s in host_snapshots(42, 3):
        stream.append(s)
    repo = Repository(objects, CONFIG)
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        catalog = Catalog(repo.objects, rng=random.Random(i))

        def mutate(entry: CatalogEntry) -> CatalogEntry:
            entry.user_labels[f"k{i:02d}"] = str(i)  # a field of its own
            seen = set(filter(None, entry.user_labels.get("all", "").split(",")))
            entry.user_labels["all"] = ",".join(sorted(seen | {str(i)}))  # a shared field
            return entry

        try:
            barrier.wait()
            if i % 4 == 3:
                repo.refresh_catalog(host)  # rebuilds the statistics, keeps user labels
            catalog.update(host, mutate)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    entry = repo.catalog().get(host)
    assert entry is not None
    assert {k: v for k, v in entry.user_labels.items() if k != "all"} == {
        f"k{i:02d}": str(i) for i in range(20)
    }
    assert sorted(entry.user_labels["all"].split(","), key=int) == [str(i) for i in range(20)]
    assert entry.tiers["raw"].snapshots == 3 and entry.labels["gpu.model"] == H100


class _AlwaysConflicts(MemoryStore):
    def put(self, key: str, data: bytes, **kw: Any) -> str:
        raise PreconditionFailed("lost", key=key)


def test_update_backs_off_with_jitter_and_gives_up() -> None:
    sleeps: list[float] = []
    catalog = Catalog(
        _AlwaysConflicts(),
        max_attempts=12,
        backoff_base_s=0.01,
        backoff_cap_s=0.2,
        rng=random.Random(1),
        sleep=sleeps.append,
        clock=lambda: 123,
    )
    with pytest.raises(ConflictError, match="gave up after 12 attempts"):
        catalog.update("gpu-node-0001", lambda e: e)
    assert len(sleeps) == 12
    assert all(0 <= s <= min(0.2, 0.01 * 2**i) for i, s in enumerate(sleeps))
    assert max(sleeps) > 0.05  # the window grows


def test_hosts_and_entries(small_repo: Repository) -> None:
    catalog = small_repo.catalog()
    assert catalog.hosts() == [] and catalog.entries() == []
    small_repo.refresh_catalog("gpu-node-0007")
    assert catalog.hosts() == ["gpu-node-0007"]
    assert [e.host for e in catalog.entries()] == ["gpu-node-0007"]
    catalog.delete("gpu-node-0007")
    assert catalog.get("gpu-node-0007") is None


def test_hosts_without_an_entry_match_on_host_alone(
    small_repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    from snapcloud.query import LabelMatcher, Selector, list_hosts, plan_query

    other = small_repo.stream("gpu-node-0008", create=True)
    for s in host_snapshots(8, 2):
        other.append(s)
    small_repo.refresh_catalog("gpu-node-0007")
    small_repo.catalog().set_user_labels("gpu-node-0007", {"team": "a"})
    team = Selector(metrics=("cpu.util",), where=(LabelMatcher.parse("team=a"),))
    assert [h.host for h in plan_query(small_repo, team).hosts] == ["gpu-node-0007"]
    not_team = Selector(metrics=("cpu.util",), where=(LabelMatcher.parse("team!=a"),))
    with caplog.at_level("WARNING", logger="snapcloud.query._planner"):
        plan = plan_query(small_repo, not_team)
    assert [h.host for h in plan.hosts] == ["gpu-node-0008"]
    assert plan.uncataloged == ["gpu-node-0008"] and "no catalog entry" in caplog.text
    listing = list_hosts(small_repo)
    assert [e.host for e in listing.entries] == ["gpu-node-0007"]
    assert listing.uncataloged == ["gpu-node-0008"]
    refreshed = list_hosts(small_repo, refresh=True)
    assert [e.host for e in refreshed.entries] == ["gpu-node-0007", "gpu-node-0008"]
    assert refreshed.entries[0].user_labels == {"team": "a"}


class _RaceOnCatalogRead(CountingStore):
    """The first read of ``key`` lets ``race`` run first: another writer and refresher
    act between this refresher's index listing and its conditional catalog update."""

    def __init__(self, inner: MemoryStore, key: str, race: Any) -> None:
        super().__init__(inner)
        self.key, self.race = key, race

    def get(self, key: str, **kw: Any) -> Any:
        if key == self.key and self.race is not None:
            race, self.race = self.race, None
            race()
        return super().get(key, **kw)


def test_a_refresher_with_an_older_view_never_overwrites_newer_statistics() -> None:
    """Found by the concurrency tests: refresh_catalog listed the index before its
    conditional update, so a slow refresher could write back older statistics."""
    host = "gpu-node-0007"
    memory = MemoryStore()
    writer = Repository(memory, CONFIG)
    snaps = host_snapshots(7, 8)
    stream = writer.stream(host, create=True)
    for s in snaps[:6]:
        stream.append(s)
    writer.refresh_catalog(host)

    def other_writer_and_refresher() -> None:
        for s in snaps[6:]:
            stream.append(s)
        assert writer.refresh_catalog(host).tiers["raw"].snapshots == 8

    slow = Repository(
        _RaceOnCatalogRead(memory, catalog_key(host), other_writer_and_refresher), CONFIG
    )
    assert slow.refresh_catalog(host).tiers["raw"].snapshots == 8
    assert writer.catalog().get(host).tiers["raw"].snapshots == 8  # type: ignore[union-attr]


def test_entries_written_with_sorted_keys_still_read(small_repo: Repository) -> None:
    """The catalog wrote its entries with sorted keys before the shared checked-JSON
    writer; the written-form check must keep reading them (key order is the writer's)."""
    host = "gpu-node-0007"
    entry = small_repo.refresh_catalog(host)
    key = catalog_key(host)
    body = json.loads(small_repo.objects.get(key).data)
    old_form = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    assert old_form != small_repo.objects.get(key).data
    small_repo.objects.put(key, old_form)
    assert small_repo.catalog().get(host) == entry
    (report,) = small_repo.verify(host)
    assert report.ok, report.problems
    # a byte that parses the same is still a changed byte
    spaced = old_form.replace(b'"host":', b'"host": ', 1)
    small_repo.objects.put(key, spaced)
    with pytest.raises(ChecksumMismatch, match="written form"):
        small_repo.catalog().get(host)
