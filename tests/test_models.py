"""Validation at the boundary: one clear ValidationError naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from snapcloud.errors import ValidationError
from snapcloud.models import (
    MetricSeries,
    ProfileSnapshot,
    SnapshotConfig,
    SnapshotQuery,
    validate_host,
    validate_metric_name,
)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("", "must not be empty"),
        ("a/b", "'/'"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("x" * 201, "over the limit"),
        ("-lead", "outside"),
        ("sp ace", "outside"),
        ("ünïcode", "outside"),
    ],
)
def test_bad_metric_names(name: str, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle) as info:
        MetricSeries(name, [1], [1.0])
    assert info.value.field == "name"


@pytest.mark.parametrize("host", ["", "a/b", "../x", "h\x7f", "x" * 129, ".hidden", "a b"])
def test_bad_hosts(host: str) -> None:
    with pytest.raises(ValidationError) as info:
        ProfileSnapshot(host, [], window_start=0, window_end=1)
    assert info.value.field == "host"


def test_the_compactors_lease_name_is_no_host() -> None:
    """A host ``compactor`` would share ``marks/leases/compactor.json`` with the compactor:
    its recorder and the compactor would shut each other out."""
    with pytest.raises(ValidationError, match="reserved") as info:
        validate_host("compactor")
    assert info.value.field == "host"
    assert validate_host("compactor-1") == "compactor-1"


def test_good_names() -> None:
    assert validate_host("gpu-node-0001.dc1") == "gpu-node-0001.dc1"
    assert validate_metric_name("gpu.7.power_mw") == "gpu.7.power_mw"
    assert validate_metric_name("temp.coretemp:0.%") == "temp.coretemp:0.%"


def test_series_checks() -> None:
    with pytest.raises(ValidationError, match="2 timestamps but 3 values"):
        MetricSeries("m", [1, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValidationError, match="non-finite timestamp"):
        MetricSeries("m", np.array([1.0, np.nan]), [1.0, 2.0])
    with pytest.raises(ValidationError, match="integer nanoseconds"):
        MetricSeries("m", np.array([1.5]), [1.0])
    with pytest.raises(ValidationError, match="out of order at position 2"):
        MetricSeries("m", [1, 3, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValidationError, match="expected numbers"):
        MetricSeries("m", [1], ["x"])
    with pytest.raises(ValidationError, match="kind"):
        MetricSeries("m", [1], [1.0], kind="histogram")
    with pytest.raises(ValidationError, match="1-D"):
        MetricSeries("m", [[1]], [[1.0]])
    ok = MetricSeries("m", [1, 1, 2], [np.nan, -0.0, np.inf])
    assert len(ok) == 3 and not ok.values.flags.writeable


def test_snapshot_checks() -> None:
    m = MetricSeries("m", [5, 6], [1.0, 2.0])
    with pytest.raises(ValidationError, match="appears twice"):
        ProfileSnapshot("h", [m, m])
    with pytest.raises(ValidationError, match="window_end"):
        ProfileSnapshot("h", [m], window_start=10, window_end=5)
    with pytest.raises(ValidationError, match="required"):
        ProfileSnapshot("h", [])
    with pytest.raises(ValidationError, match="metadata"):
        ProfileSnapshot("h", [m], metadata={"x": float("nan")})
    with pytest.raises(ValidationError, match="metadata"):
        ProfileSnapshot("h", [m], metadata={"x": [1, 2]})
    with pytest.raises(ValidationError, match="labels"):
        ProfileSnapshot("h", [m], labels={"bad/key": "v"})
    with pytest.raises(ValidationError, match="seq"):
        ProfileSnapshot("h", [m], seq=-1)
    s = ProfileSnapshot("h", [m], labels={"b": "2", "a": "1"})
    assert (s.window_start, s.window_end) == (5, 7)
    assert list(s.labels) == ["a", "b"]
    assert s.raw_bytes == 32


def test_checksum_covers_every_bit() -> None:
    ts = np.arange(4, dtype=np.int64)
    base = ProfileSnapshot("h", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0])])
    variants = [
        ProfileSnapshot("h", [MetricSeries("m", ts, [-0.0, 1.0, 2.0, 3.0])]),
        ProfileSnapshot("h", [MetricSeries("m", ts + 1, [0.0, 1.0, 2.0, 3.0])]),
        ProfileSnapshot("h", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0], unit="W")]),
        ProfileSnapshot("h", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0], kind="counter")]),
        ProfileSnapshot("h", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0])], seq=1),
        ProfileSnapshot("h", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0])], fingerprint="f"),
        ProfileSnapshot("h", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0])], labels={"a": "b"}),
        ProfileSnapshot("h2", [MetricSeries("m", ts, [0.0, 1.0, 2.0, 3.0])]),
    ]
    seen = {base.checksum}
    for v in variants:
        assert v.checksum not in seen
        seen.add(v.checksum)


def test_config_and_query_validation() -> None:
    with pytest.raises(ValueError, match="tier ages"):
        SnapshotConfig(raw_max_age_ns=10, compressed_max_age_ns=5)
    with pytest.raises(ValueError, match="keyframe_interval"):
        SnapshotConfig(keyframe_interval=0)
    with pytest.raises(ValueError, match="before start"):
        SnapshotQuery(start_ns=10, end_ns=5)
    with pytest.raises(ValueError, match="'/'"):
        SnapshotQuery(metrics=("a/b",))
    q = SnapshotQuery(start_ns=10, end_ns=20)
    assert q.overlaps(0, 11) and not q.overlaps(0, 10) and not q.overlaps(20, 30)


def test_query_bounds_from_numpy_keep_every_nanosecond() -> None:
    """A bound taken from a series' int64 timestamps was rounded through a float."""
    t = np.int64(1_767_225_600_000_000_001)
    q = SnapshotQuery(start_ns=t, end_ns=t + 1, limit=np.int32(3))
    assert (q.start_ns, q.end_ns, q.limit) == (
        1_767_225_600_000_000_001,
        1_767_225_600_000_000_002,
        3,
    )
    assert type(q.start_ns) is int
