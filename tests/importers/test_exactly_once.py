"""Exactly once by sample: imports that overlap what a host holds store only what is new,
and read only the index their time range needs (issue cases: a grown file re-imported,
the same file twice, a file that fills a gap, appending to a long stream)."""

from __future__ import annotations

import calendar
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from snapcloud.backends import CountingStore, MemoryStore
from snapcloud.errors import ValidationError
from snapcloud.importers import append_windows, cut_windows, import_files, read_csv
from snapcloud.models import MetricSeries, SnapshotConfig, SnapshotQuery
from snapcloud.retention import Compactor
from snapcloud.store import Repository
from tests.retention.scenario import CONFIG, HOUR, T0, write_host

S = 10**9
Samples = Counter[tuple[str, int, int]]


def utc(*parts: int) -> int:
    return calendar.timegm(parts) * S


def stream_samples(repo: Repository, host: str) -> Samples:
    """The stream's samples as a multiset of (metric, timestamp, value bits)."""
    out: Samples = Counter()
    for snap in repo.stream(host).query(SnapshotQuery()):
        for m in snap.metrics:
            bits = m.values.view(np.int64).tolist()
            out.update(zip([m.name] * len(m), m.timestamps.tolist(), bits, strict=True))
    return out


def series_samples(series: list[MetricSeries]) -> Samples:
    out: Samples = Counter()
    for m in series:
        bits = m.values.view(np.int64).tolist()
        out.update(zip([m.name] * len(m), m.timestamps.tolist(), bits, strict=True))
    return out


def log_text(rows: range, step_s: int = 7) -> str:
    t0 = utc(2024, 1, 1, 0, 0, 0)
    return "timestamp,value\n" + "".join(
        f"{(t0 + i * step_s * S) // S}.5,{i * 0.25}\n" for i in rows
    )


def import_text(repo: Repository, path: Path, text: str, window_s: int = 60):
    path.write_text(text)
    return append_windows(
        repo.stream("h", create=True), import_files("h", [path], window_ns=window_s * S)
    )


def test_reimport_of_a_grown_file_stores_each_sample_once(tmp_path: Path) -> None:
    """Was: 90 rows then 180 rows left 230 samples (a partial window and its full twin)."""
    repo = Repository(MemoryStore())
    path = tmp_path / "log.csv"
    first = import_text(repo, path, log_text(range(90)))
    grown = import_text(repo, path, log_text(range(180)))
    assert grown.samples_already_stored == 90
    again = import_text(repo, path, log_text(range(180)))
    assert again.appended == [] and again.samples_already_stored == 180
    got = stream_samples(repo, "h")
    assert sum(got.values()) == 180 and max(got.values()) == 1
    assert got == series_samples(read_csv(path))
    # the half-filled window now lives in two snapshots that overlap
    assert len(first.appended) == 11 and len(grown.appended) == 11


def test_a_file_that_fills_a_gap(tmp_path: Path) -> None:
    repo = Repository(MemoryStore())
    path = tmp_path / "log.csv"
    import_text(repo, path, log_text(range(0, 50)) + log_text(range(100, 150))[16:])
    filled = import_text(repo, path, log_text(range(150)))
    assert filled.samples_already_stored == 100
    assert stream_samples(repo, "h") == series_samples(read_csv(path))


def test_repeated_rows_keep_their_multiplicity(tmp_path: Path) -> None:
    repo = Repository(MemoryStore())
    path = tmp_path / "log.csv"
    text = "timestamp,value\n10,1\n10,1\n10,2\n20,3\n"
    import_text(repo, path, text)
    import_text(repo, path, text + "20,3\n")  # one more copy of (20, 3)
    got = stream_samples(repo, "h")
    three = np.float64(3).view(np.int64)
    assert got[("log", 10, np.float64(1).view(np.int64))] == 2
    assert got[("log", 20, three)] == 2
    assert sum(got.values()) == 5


def test_an_interrupted_import_run_again_stores_what_is_missing(tmp_path: Path) -> None:
    repo = Repository(MemoryStore())
    path = tmp_path / "log.csv"
    path.write_text(log_text(range(300)))
    snaps = import_files("h", [path], window_ns=60 * S)
    stream = repo.stream("h", create=True)
    for snap in snaps[:13]:  # the run died after 13 appends
        stream.append(snap)
    rerun = append_windows(stream, snaps)
    assert len(rerun.already_stored) >= 13 and len(rerun.appended) == len(snaps) - 13
    assert stream_samples(repo, "h") == series_samples(read_csv(path))


def test_samples_in_the_compressed_tier_count_as_stored() -> None:
    objects = MemoryStore()
    written = write_host(objects, "h", 12)  # 1 h windows, groups of 4
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR + 8 * HOUR)  # oldest groups compressed
    repo = Repository(objects, CONFIG)
    stream = repo.stream("h")
    assert any(e.key.startswith("compressed/") for e in stream.entries())
    before = stream_samples(repo, "h")
    series = [
        MetricSeries(m.name, m.timestamps, m.values, kind=m.kind, unit=m.unit)
        for s in written
        for m in s.metrics
    ]
    by_name: dict[str, list[MetricSeries]] = {}
    for m in series:
        by_name.setdefault(m.name, []).append(m)
    whole = [
        MetricSeries(
            n,
            np.concatenate([p.timestamps for p in ps]),
            np.concatenate([p.values for p in ps]),
            kind=ps[0].kind,
            unit=ps[0].unit,
        )
        for n, ps in by_name.items()
    ]
    again = append_windows(stream, cut_windows("h", whole, window_ns=HOUR))
    assert again.appended == [] and stream_samples(repo, "h") == before


def test_a_window_the_archive_holds_is_refused() -> None:
    objects = MemoryStore()
    write_host(objects, "h", 28)
    Compactor(objects, CONFIG).run(T0 + 28 * HOUR + 24 * HOUR)  # day 0 into the archive
    repo = Repository(objects, CONFIG)
    stream = repo.stream("h")
    assert any(e.key.startswith("archive/") for e in stream.entries())
    snap = cut_windows("h", [MetricSeries("util", [T0 + 10 * HOUR + 5], [1.0])], window_ns=HOUR)
    with pytest.raises(ValidationError, match="archive tier"):
        append_windows(stream, snap)


# ------------------------------------------------------------------ index reads


LONG = SnapshotConfig(
    keyframe_interval=10,
    raw_max_age_ns=10 * 365 * 24 * HOUR,
    compressed_max_age_ns=10 * 365 * 24 * HOUR,
    archive_max_age_ns=10 * 365 * 24 * HOUR,
)


def long_host(windows: int) -> tuple[MemoryStore, int]:
    """A host of ``windows`` one-minute windows in groups of 10, range-hinted."""
    objects = MemoryStore()
    series = [MetricSeries("cpu", T0 + np.arange(windows * 6) * 10 * S, np.arange(windows * 6.0))]
    stream = Repository(objects, LONG).stream("h", create=True)
    for snap in cut_windows("h", series, window_ns=60 * S):
        stream.append(snap)
    Compactor(objects, LONG).run(T0 + windows * 60 * S + HOUR)  # writes the range hints
    return objects, T0 + windows * 60 * S


def index_reads(objects: MemoryStore, snaps: list, host: str = "h") -> tuple[int, int]:
    counted = CountingStore(objects)
    seen: list[str] = []
    original = counted.get

    def get(key: str, **kw: object) -> object:
        if key.startswith("index/"):
            seen.append(key)
        return original(key, **kw)  # type: ignore[arg-type]

    counted.get = get  # type: ignore[method-assign]
    stream = Repository(counted, LONG).stream(host, create=True)
    append_windows(stream, snaps)
    assert len(seen) == len(set(seen)), "an index segment read twice"
    return len(seen), sum(counted.counts().values())


@pytest.mark.parametrize("windows", [100, 1000])
def test_appending_to_a_long_stream_reads_only_the_open_groups_index(windows: int) -> None:
    """Was: append_windows read every index segment of the host (O(stream) requests)."""
    objects, end = long_host(windows)
    new = cut_windows(
        "h", [MetricSeries("cpu", end + np.arange(30) * 10 * S, np.ones(30))], window_ns=60 * S
    )
    reads, requests = index_reads(objects, new)
    assert reads == 1  # the open group's segment: every append needs it
    assert requests <= 2 + 1 + 2 * len(new) + 2  # listings, segment, appends, keyframe


def test_an_overlapping_import_reads_each_overlapping_group_once() -> None:
    objects, _ = long_host(300)
    # rows of 25 minutes somewhere in the middle: 3 or 4 groups of 10 windows
    start = T0 + 100 * 60 * S
    series = [MetricSeries("cpu", start + np.arange(150) * 10 * S, 100 + np.arange(150.0))]
    reads, _ = index_reads(objects, cut_windows("h", series, window_ns=60 * S))
    assert 3 <= reads <= 5  # the groups in range and the open group, each once


def test_an_import_hints_the_groups_it_read_so_the_next_reads_one() -> None:
    """A host the compactor never ran on: the first import reads every sealed group's
    segment (no range hint says where they lie) and writes their hints; the next reads
    only the open group's."""
    objects = MemoryStore()
    stream = Repository(objects, LONG).stream("h", create=True)
    series = [MetricSeries("cpu", T0 + np.arange(300 * 6) * 10 * S, np.arange(300 * 6.0))]
    for snap in cut_windows("h", series, window_ns=60 * S):
        stream.append(snap)
    end = T0 + 300 * 60 * S
    first = cut_windows(
        "h", [MetricSeries("cpu", end + np.arange(6) * 10 * S, np.ones(6))], window_ns=60 * S
    )
    reads, _ = index_reads(objects, first)
    assert reads == 30  # every group: 29 sealed, the open one
    later = end + 3600 * S
    second = cut_windows(
        "h", [MetricSeries("cpu", later + np.arange(6) * 10 * S, np.ones(6))], window_ns=60 * S
    )
    reads, _ = index_reads(objects, second)
    assert reads == 1


def test_a_stored_window_wider_than_the_import_s_is_read_once(tmp_path: Path) -> None:
    """Imported at 1 h windows, re-imported at 1 min: each stored hour overlaps 60 new
    windows, and is read once, not 60 times."""
    repo = Repository(MemoryStore())
    path = tmp_path / "log.csv"
    import_text(repo, path, log_text(range(1000)), window_s=3600)
    counted = CountingStore(repo.objects)
    again = append_windows(
        Repository(counted).stream("h"), import_files("h", [path], window_ns=60 * S)
    )
    assert again.appended == [] and again.samples_already_stored == 1000
    assert counted.counts()["get"] <= 2 + 4  # segment(s), two hour objects (and keyframes)
