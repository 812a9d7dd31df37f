"""CSV import: every timestamp format, units, missing cells, exact values, clear errors, windows."""

from __future__ import annotations

import calendar
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.errors import ValidationError
from snapcloud.importers import cut_windows, import_files, read_csv
from snapcloud.models import MetricSeries

NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"
needs_nab = pytest.mark.skipif(not NAB.is_dir(), reason="shared NAB data not present")
S = 10**9
T0 = calendar.timegm((2026, 1, 1, 0, 0, 0)) * S  # 2026-01-01T00:00:00Z in epoch ns


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def bits(values: object) -> list[int]:
    out: list[int] = np.asarray(values, dtype=np.float64).view(np.int64).tolist()
    return out


def floats_of(cells: list[str]) -> list[int]:
    """The bit patterns Python's own float() gives for these cells: the reference."""
    return bits([float(c) for c in cells])


# ------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-01-01 00:00:01", T0 + S),
        ("2026-01-01 00:00:01.25", T0 + S + 250_000_000),
        ("2026-01-01 00:00:01.123456789", T0 + S + 123_456_789),
        ("2026-01-01T00:00:01", T0 + S),
        ("2026-01-01 00:01", T0 + 60 * S),
        ("2026-01-01", T0),
        ("2026-01-01T00:00:01Z", T0 + S),
        ("2026-01-01T00:00:01.000000001Z", T0 + S + 1),
        ("2026-01-01T01:00:01+01:00", T0 + S),
        ("2025-12-31T18:30:01-0530", T0 + S),
        ("2026/01/01 00:00:01.500", T0 + S + 500_000_000),
        ("1969-12-31 23:59:59", -S),
        (str(T0 + 7), T0 + 7),
        ("-5", -5),
        ("1767225600.123456789", T0 + 123_456_789),
        ("1767225601.5", T0 + S + 500_000_000),
        ("1767225601.", T0 + S),
        ("1767225600.1234567891", T0 + 123_456_789),  # past the ninth digit is dropped
        ("-1.25", -1_250_000_000),
        ("-0.5", -500_000_000),
    ],
)
def test_timestamp_formats(tmp_path: Path, cell: str, expected: int) -> None:
    (m,) = read_csv(write(tmp_path, "cpu.csv", f"timestamp,value\n{cell},1.5\n"))
    assert m.name == "cpu" and m.timestamps.tolist() == [expected]


def test_float_seconds_keep_every_nanosecond(tmp_path: Path) -> None:
    cells = ["1700000000.123456789", "1700000000.999999999", "1700000001.000000001"]
    text = "ts,value\n" + "".join(f"{c},0\n" for c in cells)
    (m,) = read_csv(tmp_path / "s.csv", text=text)
    assert m.timestamps.tolist() == [
        1_700_000_000_123_456_789,
        1_700_000_000_999_999_999,
        1_700_000_001_000_000_001,
    ]
    # float arithmetic would not: the nearest double to ...123456789 s is off by tens of ns
    assert int(float(cells[0]) * 1e9) != 1_700_000_000_123_456_789


@pytest.mark.parametrize("header", ["time", "TS", "Date", "Timestamp", "timestamp [ns]", " time "])
def test_time_column_names(tmp_path: Path, header: str) -> None:
    (m,) = read_csv(tmp_path / "x.csv", text=f"{header},value\n5,1\n")
    assert m.timestamps.tolist() == [5]


@pytest.mark.parametrize(("unit", "scale"), [("s", S), ("ms", 10**6), ("us", 10**3), ("ns", 1)])
def test_time_unit_rescales_integer_epochs(tmp_path: Path, unit: str, scale: int) -> None:
    (m,) = read_csv(tmp_path / "x.csv", text=f"timestamp [{unit}],value\n1767225600,1\n")
    assert m.timestamps.tolist() == [1767225600 * scale]


def test_offsets_may_change_between_rows(tmp_path: Path) -> None:
    text = (
        "timestamp,value\n"
        "2026-03-29T01:59:00+01:00,1\n"  # a DST change: the offset moves, time goes on
        "2026-03-29T03:00:00+02:00,2\n"
        "2026-03-29T01:01:00Z,3\n"
    )
    (m,) = read_csv(tmp_path / "dst.csv", text=text)
    base = calendar.timegm((2026, 3, 29, 0, 59, 0)) * S
    assert m.timestamps.tolist() == [base, base + 60 * S, base + 120 * S]


def test_integer_seconds_without_a_unit_are_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="snapcloud.importers.csv"):
        (m,) = read_csv(tmp_path / "x.csv", text="timestamp,value\n1,1\n2,2\n")
    assert m.timestamps.tolist() == [1, 2]  # nanoseconds as documented, but with a warning
    assert "[s]" in caplog.text


# ------------------------------------------------------------------ values and units


def test_special_values_bit_exact(tmp_path: Path) -> None:
    cells = ["nan", "-nan", "NaN", "inf", "-inf", "Infinity", "-0.0", "0.0", "51.846000000000004"]
    cells += ["5e-324", "2.2250738585072014e-308", "1.7976931348623157e308", "0.1"]
    cells += ["  7.5  ", "+3", "1_000"]
    text = "ts,value\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells))
    (m,) = read_csv(tmp_path / "s.csv", text=text)
    assert bits(m.values) == floats_of(cells)
    assert bits(m.values)[6] == np.array(-0.0).view(np.int64)  # -0.0 keeps its sign


def test_nvidia_smi_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "timestamp, name, power.draw [W], utilization.gpu [%], clocks.sm [MHz], "
        "temperature.gpu, fan.speed [%]\n"
        "2026/01/01 00:00:00.000, NVIDIA H100 80GB HBM3, 53.78 W, 0 %, 345 MHz, 34, [N/A]\n"
        "2026/01/01 00:00:01.000, NVIDIA H100 80GB HBM3, [N/A], 12 %, 1980 MHz, 35, [N/A]\n"
        "2026/01/01 00:00:02.000, NVIDIA H100 80GB HBM3, 61.02 W, 97 %, 1980 MHz, 36, [N/A]\n"
    )
    with caplog.at_level(logging.WARNING, logger="snapcloud.importers.csv"):
        ms = {m.name: m for m in read_csv(write(tmp_path, "smi.csv", text))}
    assert list(ms) == ["power.draw", "utilization.gpu", "clocks.sm", "temperature.gpu"]
    assert (
        "'name' holds no numbers" in caplog.text and "'fan.speed' holds no numbers" in caplog.text
    )
    assert {n: m.unit for n, m in ms.items()} == {
        "power.draw": "W",
        "utilization.gpu": "%",
        "clocks.sm": "MHz",
        "temperature.gpu": "",
    }
    assert bits(ms["power.draw"].values) == floats_of(["53.78", "61.02"])
    assert ms["power.draw"].timestamps.tolist() == [T0, T0 + 2 * S]  # the [N/A] row is no sample
    assert ms["clocks.sm"].values.tolist() == [345.0, 1980.0, 1980.0]
    assert ms["utilization.gpu"].timestamps.tolist() == [T0, T0 + S, T0 + 2 * S]
    assert all(m.kind == "gauge" for m in ms.values())


def test_cell_units_recorded_when_the_header_has_none(tmp_path: Path) -> None:
    (m,) = read_csv(tmp_path / "p.csv", text="time,power\n1,5 W\n2, 6.5  W \n3,7\n")
    assert m.unit == "W" and m.values.tolist() == [5.0, 6.5, 7.0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("time,power\n1,5 W\n2,6 kW\n", "p.csv:3: column 'power': unit 'kW' of '6 kW' is not 'W'"),
        ("time,power [W]\n1,5 W\n2,6 kW\n", "p.csv:3: column 'power': unit 'kW'"),
        (
            "time,power [W]\n1,5 mW\n",
            "p.csv:2: column 'power': unit 'mW' of '5 mW' is not the head",
        ),
        ("time,power\n1,5 W\n2,1 2\n", "p.csv:3: column 'power': cannot parse '1 2' as a number"),
        ("time,power\n1,5 W\n2,6 W x\n", "p.csv:3: column 'power': cannot parse '6 W x'"),
    ],
)
def test_unit_errors(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        read_csv(tmp_path / "p.csv", text=text)
    assert needle in str(info.value)


def test_missing_cells_skip_one_metric_only(tmp_path: Path) -> None:
    text = "ts,a,b,c\n1,1,,N/A\n2, ,2,n/a\n3,3,[N/A],\n4,4,4,[Not Supported]\n"
    with pytest.raises(ValidationError, match="no column"):
        read_csv(tmp_path / "x.csv", text="ts,a\n1,\n2,N/A\n")
    ms = {m.name: m for m in read_csv(tmp_path / "x.csv", text=text)}
    assert set(ms) == {"a", "b"}  # c holds no number at all
    assert ms["a"].timestamps.tolist() == [1, 3, 4] and ms["a"].values.tolist() == [1, 3, 4]
    assert ms["b"].timestamps.tolist() == [2, 4] and ms["b"].values.tolist() == [2, 4]


def test_counter_kind_by_name(tmp_path: Path) -> None:
    ms = read_csv(tmp_path / "x.csv", text="ts,bytes_total,bytes\n1,1,1\n")
    assert [(m.name, m.kind) for m in ms] == [("bytes_total", "counter"), ("bytes", "gauge")]


def test_repeated_timestamps_are_kept(tmp_path: Path) -> None:
    (m,) = read_csv(tmp_path / "d.csv", text="timestamp,value\n1,1\n2,2\n2,3\n3,4\n")
    assert m.timestamps.tolist() == [1, 2, 2, 3] and m.values.tolist() == [1, 2, 3, 4]


def test_layout_variants_read_alike(tmp_path: Path) -> None:
    plain = "timestamp,a,b\n1,1.5,2\n2,2.5,3\n"
    variants = [
        plain.replace("\n", "\r\n"),
        "\ufeff" + plain,
        "\n\n" + plain.replace("1,1.5", "\n  \n1,1.5") + "\n\n",
        'timestamp,"a",b\n1,"1.5",2\n2,2.5,"3"\n',
        "timestamp , a , b\n1 , 1.5 , 2\n2,2.5,3",
    ]
    want = read_csv(tmp_path / "x.csv", text=plain)
    for text in variants:
        assert read_csv(tmp_path / "x.csv", text=text) == want, repr(text)


def test_text_argument_names_the_metric_after_the_path(tmp_path: Path) -> None:
    (m,) = read_csv("some/dir/gpu0.power.csv", text="timestamp,value [W]\n1,2\n")
    assert (m.name, m.unit) == ("gpu0.power", "W")


# ------------------------------------------------------------------ real data


@needs_nab
def test_nab_file() -> None:
    path = NAB / "ec2_cpu_utilization_24ae8d.csv"
    (m,) = read_csv(path)
    lines = path.read_text().splitlines()[1:]
    assert m.name == "ec2_cpu_utilization_24ae8d" and m.unit == "" and m.kind == "gauge"
    assert len(m) == len(lines) == 4032
    assert int(m.timestamps[0]) == calendar.timegm((2014, 2, 14, 14, 30, 0)) * S
    assert bits(m.values) == floats_of([line.split(",")[1] for line in lines])


@needs_nab
@pytest.mark.parametrize("path", sorted(NAB.glob("*.csv")) if NAB.is_dir() else [], ids=str)
def test_every_nab_file_bit_exact(path: Path) -> None:
    (m,) = read_csv(path)
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    want_ts = np.array([r[0] for r in rows], dtype="datetime64[ns]").view(np.int64)
    assert m.timestamps.tolist() == want_ts.tolist()
    assert bits(m.values) == floats_of([r[1] for r in rows])


@needs_nab
def test_nab_value_with_many_digits_round_trips() -> None:
    (m,) = read_csv(NAB / "ec2_cpu_utilization_5f5533.csv")
    assert bits(m.values[:1]) == floats_of(["51.846000000000004"])
    assert repr(float(m.values[0])) == "51.846000000000004"


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("timestamp,value\n1,1\n2,abc\n", "x.csv:3: column 'x': cannot parse 'abc' as a number"),
        ("timestamp,a,b\n1,1,2\n2,3,0x1F\n", "x.csv:3: column 'b': cannot parse '0x1F'"),
        ("timestamp,value\n1,1\nnot-a-time,2\n", "x.csv:3: column 'timestamp': cannot parse "),
        ("time,value\n2026-01-01 00:00:00,1\n5,2\n", "x.csv:3: column 'time': cannot parse time"),
        (
            "timestamp,value\n1.5,1\n2,2\n",
            "x.csv:3: column 'timestamp': cannot parse timestamp '2'",
        ),
        ("timestamp,value\nyesterday,1\n", "x.csv:2: column 'timestamp': cannot parse 'yesterday'"),
        ("timestamp,value\n1,1,1\n", "x.csv:2: 3 cells where the header has 2"),
        ("timestamp,value\n1,1\n2\n", "x.csv:3: 1 cells where the header has 2"),
        ("", "x.csv: empty file"),
        ("\n  \n\n", "x.csv: empty file"),
        ("timestamp,value\n", "x.csv:1: only a header, no data rows"),
        ("\n\ntimestamp,value\n\n", "x.csv:3: only a header"),
        ("when,value\n1,1\n", "x.csv:1: first column 'when' is not a time column"),
        ("timestamp\n1\n", "x.csv:1: no value column"),
        ("timestamp,a/b\n1,1\n", "x.csv:1: column 2: metric name: 'a/b' must not contain '/'"),
        ("timestamp,cpu load\n1,1\n", "x.csv:1: column 2: metric name: 'cpu load' has characters"),
        ("timestamp,a,a\n1,1,2\n", "x.csv:1: metric 'a' appears in two columns"),
        ("timestamp,value\n2026-13-45 00:00:00,1\n", "x.csv:2: column 'timestamp': invalid date"),
        ("timestamp,value\n2026-01-01 24:00:00,1\n", "x.csv:2: column 'timestamp': invalid date"),
        ("timestamp,value\n2300-01-01 00:00:00,1\n", "x.csv:2: column 'timestamp': timestamp '2"),
        ("timestamp,value\n99999999999999999999,1\n", "x.csv:2: column 'timestamp': timestamp '9"),
        ("timestamp,value\n9999999999.5,1\n", "x.csv:2: column 'timestamp': timestamp '9"),
        ("timestamp,value\n2026-01-01T00:00+25:00,1\n", "x.csv:2: column 'timestamp': invalid UTC"),
        ("timestamp [h],value\n1,1\n", "x.csv:2: column 'timestamp': unit [h] does not fit"),
        ("timestamp,value\n1,nan\n2,N/A\n3,\n4,x\n", "x.csv:5: column 'x': cannot parse 'x'"),
        ('timestamp,value\n1,1\n"2\n3",2\n', "x.csv:3: column 'timestamp': cannot parse"),
        ('timestamp,"a",c\n1,"1\n",2\n2,2,x\n', "x.csv:4: column 'c': cannot parse 'x'"),
        ("timestamp,name\n1,abc\n2,def\n", "x.csv:1: no column holds numbers"),
    ],
)
def test_errors_say_what_and_where(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, "x.csv", text)
    with pytest.raises(ValidationError) as info:
        read_csv(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert needle.replace("x.csv", str(path)) in message, message


def test_error_context_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "timestamp,gpu\n1,1\n2,abc\n")
    with pytest.raises(ValidationError) as info:
        read_csv(path)
    assert info.value.context == {"path": str(path), "line": 3, "column": "gpu"}
    assert (getattr(info.value, "line", None), getattr(info.value, "column", None)) == (3, "gpu")


def test_stem_that_is_no_metric_name(tmp_path: Path) -> None:
    path = write(tmp_path, "cpu load.csv", "timestamp,value\n1,1\n")
    with pytest.raises(ValidationError, match=r"cpu load\.csv: .*file name.*'cpu load'"):
        read_csv(path)


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"missing\.csv: cannot read: No such file"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(ValidationError, match="cannot read"):
        read_csv(tmp_path)
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"timestamp,value\n1,1\n2,\xff\xfe\n")
    with pytest.raises(ValidationError, match=r"bin\.csv:3: not UTF-8 text \(byte 0xff"):
        read_csv(bad)


def test_same_metric_in_two_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.csv", "timestamp,power\n1,1\n")
    b = write(tmp_path, "b.csv", "timestamp,power\n2,1\n")
    with pytest.raises(ValidationError) as info:
        import_files("h", [a, b], window_ns=10)
    assert str(a) in str(info.value) and str(b) in str(info.value)


# ------------------------------------------------------------------ windows


def test_import_files_cuts_all_series_together(tmp_path: Path) -> None:
    a = write(tmp_path, "cpu.csv", "timestamp,value\n0,1\n15,2\n25,3\n")
    b = write(tmp_path, "smi.csv", "timestamp,power [W],temp\n5,10,40\n12,11,\n")
    snaps = import_files("host-1", [a, b], window_ns=10, fingerprint="job")
    assert [(s.window_start, s.window_end) for s in snaps] == [(0, 10), (10, 20), (20, 30)]
    assert [[m.name for m in s.metrics] for s in snaps] == [
        ["cpu", "power", "temp"],
        ["cpu", "power"],
        ["cpu"],
    ]
    assert all(s.host == "host-1" and s.fingerprint == "job" and s.seq == 0 for s in snaps)
    assert snaps[1].metric("power").unit == "W"


def test_windows_cover_every_sample_once() -> None:
    rng = np.random.default_rng(1)
    ts = T0 - 3600 * S + np.cumsum(rng.integers(0, 40 * S, 2000))  # repeats included
    series = [
        MetricSeries("a", ts, rng.normal(size=ts.size)),
        MetricSeries("b", ts[::7], np.full(ts[::7].size, np.nan)),
        MetricSeries("c", ts[:5], [-0.0, np.inf, -np.inf, 1.0, 2.0]),
        MetricSeries("empty", [], []),
    ]
    window = 60 * S
    snaps = cut_windows("h", series, window_ns=window, labels={"gpu": "0"}, metadata={"k": 1})
    starts = [s.window_start for s in snaps]
    assert starts == sorted(set(starts))
    assert all(
        s.window_start % window == 0 and s.window_end - s.window_start == window for s in snaps
    )
    assert all(s.labels == {"gpu": "0"} and s.metadata == {"k": 1} for s in snaps)
    for s in snaps:
        assert s.metrics, "no empty window"
        for m in s.metrics:
            assert len(m) and s.window_start <= m.timestamps[0] and m.timestamps[-1] < s.window_end
    for original in series[:3]:
        parts = [m for s in snaps for m in s.metrics if m.name == original.name]
        assert (
            np.concatenate([p.timestamps for p in parts]).tobytes() == original.timestamps.tobytes()
        )
        assert np.concatenate([p.values for p in parts]).tobytes() == original.values.tobytes()
    assert all("empty" not in {m.name for m in s.metrics} for s in snaps)


def test_windows_align_before_the_epoch() -> None:
    snaps = cut_windows("h", [MetricSeries("a", [-15, -10, -1, 0], [1, 2, 3, 4])], window_ns=10)
    assert [(s.window_start, s.window_end, len(s.metrics[0])) for s in snaps] == [
        (-20, -10, 1),
        (-10, 0, 2),
        (0, 10, 1),
    ]


@pytest.mark.parametrize("window", [0, -10, 1.5, True, 2**63])
def test_bad_window(window: object) -> None:
    with pytest.raises(ValidationError, match="window_ns"):
        cut_windows("h", [MetricSeries("a", [1], [1])], window_ns=window)  # type: ignore[arg-type]


def test_cut_windows_refuses_bad_input() -> None:
    a = MetricSeries("a", [1], [1])
    with pytest.raises(ValidationError, match="appears twice"):
        cut_windows("h", [a, a], window_ns=10)
    with pytest.raises(ValidationError, match="host"):
        cut_windows("bad host", [a], window_ns=10)
    assert cut_windows("h", [], window_ns=10) == []


# ------------------------------------------------------------------ properties

values_st = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [-0.0, 0.0, 0.1, 5e-324, -1e308, float("nan"), float("-nan")]
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 10**12), min_size=1, max_size=60),
    st.lists(values_st, min_size=60, max_size=60),
    st.integers(-(10**15), 10**18),
)
def test_property_long_file_round_trip(steps: list[int], values: list[float], t0: int) -> None:
    ts = t0 + np.cumsum(np.array(steps, dtype=np.int64))
    cells = [repr(v) for v in values[: ts.size]]
    text = "timestamp [ns],value\n" + "".join(
        f"{t},{c}\n" for t, c in zip(ts.tolist(), cells, strict=True)
    )
    (m,) = read_csv(Path("prop.csv"), text=text)
    assert m.timestamps.tobytes() == ts.tobytes()
    assert bits(m.values) == floats_of(cells)
    original = np.array(values[: ts.size])
    keep = ~np.isnan(original)  # repr() writes every NaN as 'nan': its payload cannot survive
    assert bits(m.values[keep]) == bits(original[keep])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 10**10), values_st | st.none(), values_st | st.none()),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["", " W"]),
)
def test_property_wide_file_with_gaps(
    rows: list[tuple[int, float | None, float | None]], unit: str
) -> None:
    ts = np.cumsum([r[0] for r in rows]).tolist()
    lines = ["ts,a,b"]
    for t, (_, a, b) in zip(ts, rows, strict=True):
        lines.append(
            f"{t},{'' if a is None else repr(a) + unit},{'[N/A]' if b is None else repr(b)}"
        )
    if all(r[1] is None and r[2] is None for r in rows):
        with pytest.raises(ValidationError, match="no column holds numbers"):
            read_csv(Path("w.csv"), text="\n".join(lines))
        return
    got = {m.name: m for m in read_csv(Path("w.csv"), text="\n".join(lines))}
    for k, name in ((1, "a"), (2, "b")):
        present = [(t, r[k]) for t, r in zip(ts, rows, strict=True) if r[k] is not None]
        if not present:
            assert name not in got
            continue
        assert got[name].timestamps.tolist() == [t for t, _ in present]
        assert bits(got[name].values) == floats_of([repr(v) for _, v in present])
    if "a" in got:
        assert got["a"].unit == unit.strip()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=30))
def test_property_iso_and_epoch_seconds_are_exact(raw: list[int]) -> None:
    ts = np.sort(np.array(raw, dtype=np.int64))
    iso = np.datetime_as_string(ts.astype("datetime64[ns]"), unit="ns")
    seconds = [f"{'-' if t < 0 else ''}{abs(t) // S}.{abs(t) % S:09d}" for t in ts.tolist()]
    for cells in ([f"{c}Z" for c in iso], [c.replace("T", " ") for c in iso], seconds):
        text = "timestamp,value\n" + "".join(f"{c},1\n" for c in cells)
        (m,) = read_csv(Path("t.csv"), text=text)
        assert m.timestamps.tolist() == ts.tolist(), cells[:3]
