"""Selectors: label matchers, globs, time ranges; bad input is a ValidationError naming it."""

from __future__ import annotations

import pytest

from snapcloud.errors import ValidationError
from snapcloud.query import LabelMatcher, Selector, gpu_index, metric_field, time_range

LABELS = {"gpu.model": "NVIDIA H100 80GB HBM3", "rack": "r1", "empty": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rack=r1", True),
        ("rack=r2", False),
        ("rack!=r2", True),
        ("gpu.model=~.*H100.*", True),
        ("gpu.model=~H100", False),  # regexes match the whole value
        ("gpu.model!~.*A100.*", True),
        ("gpu.model=NVIDIA H100 80GB HBM3", True),
        ("missing=", True),  # a missing label is ""
        ("missing!=", False),
        ("missing=~.+", False),
        ("empty=", True),
        ("rack = r1", False),  # the value keeps its spaces
        ("rack=~r[0-9]", True),
        ("x=a=b", False),
    ],
)
def test_label_matchers(text: str, expected: bool) -> None:
    assert LabelMatcher.parse(text).matches(LABELS) is expected


def test_matcher_parse_forms() -> None:
    m = LabelMatcher.parse("gpu.model!~.*A100.*")
    assert (m.label, m.op, m.value) == ("gpu.model", "!~", ".*A100.*")
    assert str(m) == "gpu.model!~.*A100.*"
    assert LabelMatcher.parse("a==b").value == "=b"


@pytest.mark.parametrize("text", ["nolabel", "=value", "bad/label=x", "a=~(unclosed", "!=x"])
def test_bad_matchers(text: str) -> None:
    with pytest.raises(ValidationError):
        LabelMatcher.parse(text)


def test_selector_globs() -> None:
    sel = Selector(hosts=("gpu-*", "cpu-0[12]"), metrics=("gpu.*.power_avg_mw", "cpu.util"))
    assert sel.host_matches("gpu-node-1") and sel.host_matches("cpu-02")
    assert not sel.host_matches("cpu-03") and not sel.host_matches("xgpu-1")
    names = ["gpu.0.power_avg_mw", "gpu.11.power_avg_mw", "gpu.0.temp_c", "cpu.util", "cpu.0.util"]
    assert sel.metric_names(names) == ["cpu.util", "gpu.0.power_avg_mw", "gpu.11.power_avg_mw"]
    assert Selector().host_matches("anything") and Selector().metric_names(names) == sorted(names)
    fp = Selector(fingerprint="llm-*")
    assert fp.fingerprint_matches("llm-train") and not fp.fingerprint_matches("inference")
    assert Selector(fingerprint="x").fingerprint_matches("x")
    assert Selector().fingerprint_matches("")
    where = Selector(where=(LabelMatcher.parse("host=~gpu-.*"), LabelMatcher.parse("rack=r1")))
    assert where.needs_labels
    assert where.labels_match("gpu-1", {"rack": "r1"})
    assert not where.labels_match("cpu-1", {"rack": "r1"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ()}, "at least one"),
        ({"metrics": ("bad/name",)}, "metrics"),
        ({"metrics": ("",)}, "metrics"),
        ({"hosts": ("",)}, "hosts"),
        ({"start_ns": 10, "end_ns": 10}, "not after"),
        ({"fingerprint": "a\nb"}, "fingerprint"),
        ({"nonsense": 1}, "nonsense"),
        ({"start_ns": "yesterday"}, "start_ns"),
    ],
)
def test_bad_selectors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Selector(**kwargs)  # type: ignore[arg-type]


def test_time_range() -> None:
    now = 1_767_225_600 * 10**9
    assert time_range(since="2h", now_ns=now) == (now - 7200 * 10**9, now)
    assert time_range(start="2026-01-01T00:00:00Z", end=str(now + 5)) == (now, now + 5)
    assert time_range() == (None, None)
    with pytest.raises(ValidationError, match="not both"):
        time_range(since="1h", start="2026-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="--since"):
        time_range(since="soon")
    with pytest.raises(ValidationError, match="--start"):
        time_range(start="2026-01-01T00:00:00")  # no zone


def test_gpu_index_and_field() -> None:
    assert gpu_index("gpu.3.power_avg_mw") == 3 and gpu_index("gpu.12.sm_clock_mhz") == 12
    assert gpu_index("gpu.util") is None and gpu_index("cpu.3.util") is None
    assert metric_field("gpu.3.power_avg_mw") == "gpu.*.power_avg_mw"
    assert metric_field("cpu.3.util") == "cpu.3.util"
