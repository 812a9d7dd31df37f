"""The files operators have, as the issue found them mangled or refused: each case a test.

Fixtures under ``data/`` are written from each tool's documented output format:
``nvidia-smi --query-gpu=... --format=csv`` (header ``timestamp, index, uuid,
power.draw [W], ...``, cells like ``53.78 W``, ``[N/A]``, ``[Not Supported]``),
``nvidia-smi dmon -o DT`` / ``pmon -o DT`` (``#``-prefixed name and unit lines),
and ``dcgmi dmon`` (``#Entity`` and ``ID`` lines, rows ``GPU 0 ...``), with each line
prefixed by a timestamp the way ``dcgmi dmon ... | ts '%Y-%m-%dT%H:%M:%.S%z'`` writes it.
"""

from __future__ import annotations

import calendar
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from snapcloud import importers
from snapcloud.backends import MemoryStore
from snapcloud.errors import ValidationError
from snapcloud.importers import append_windows, import_files, read_csv
from snapcloud.models import SnapshotQuery
from snapcloud.store import Repository

DATA = Path(__file__).parent / "data"
S = 10**9
MS = 10**6
MIB = 1 << 20


def utc(*parts: int) -> int:
    return calendar.timegm(parts) * S


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def samples(repo: Repository, host: str) -> Counter[tuple[str, int, int]]:
    """The stream's samples as a multiset of (metric, timestamp, value bits)."""
    out: Counter[tuple[str, int, int]] = Counter()
    for snap in repo.stream(host).query(SnapshotQuery()):
        for m in snap.metrics:
            bits = m.values.view(np.int64).tolist()
            out.update(zip([m.name] * len(m), m.timestamps.tolist(), bits, strict=True))
    return out


def file_samples(series: list) -> Counter[tuple[str, int, int]]:
    out: Counter[tuple[str, int, int]] = Counter()
    for m in series:
        bits = m.values.view(np.int64).tolist()
        out.update(zip([m.name] * len(m), m.timestamps.tolist(), bits, strict=True))
    return out


# ------------------------------------------------------------------ nvidia-smi --query-gpu


def test_nvidia_smi_multi_gpu_csv_makes_per_gpu_series() -> None:
    """Was: ``index`` stored as a metric and both GPUs merged into one ``power.draw``."""
    got = importers.read_table(DATA / "nvidia_smi_query_2gpu.csv")
    ms = {m.name: m for m in got.series}
    assert sorted(ms) == [
        "gpu.0.fb_used_bytes",
        "gpu.0.power_mw",
        "gpu.0.util_pct",
        "gpu.1.fb_used_bytes",
        "gpu.1.power_mw",
        "gpu.1.util_pct",
    ]
    t0 = utc(2024, 5, 14, 10, 20, 30)
    want = [t0 + 112 * MS, t0 + 613 * MS, t0 + S + 114 * MS]
    assert ms["gpu.0.power_mw"].timestamps.tolist() == want
    # watts to the recorder's milliwatts, exactly (53.78 W is 53780 mW, not 53779.99...)
    assert ms["gpu.0.power_mw"].values.tolist() == [68230.0, 312560.0, 318900.0]
    assert ms["gpu.1.power_mw"].values.tolist() == [71040.0, 309120.0]  # [N/A]: no sample
    assert ms["gpu.1.power_mw"].unit == "mW" and ms["gpu.0.util_pct"].unit == "%"
    assert ms["gpu.0.fb_used_bytes"].values.tolist() == [1 * MIB, 40532 * MIB, 40532 * MIB]
    assert ms["gpu.0.fb_used_bytes"].unit == "bytes"
    assert got.labels == {
        "gpu.0.uuid": "GPU-5a3f2c1e-8b9d-4e6f-a1b2-c3d4e5f60718",
        "gpu.1.uuid": "GPU-9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4",
    }


def test_power_draw_average_and_instant_get_the_recorders_names(tmp_path: Path) -> None:
    """``power.draw.average``/``.instant`` say what they are, so they get the recorder's
    ``power_avg_mw``/``power_instant_mw``; plain ``power.draw`` is averaged or not by the
    GPU's architecture, which the file does not say, so it stays ``power_mw``."""
    path = write(
        tmp_path,
        "power.csv",
        "timestamp, index, power.draw [W], power.draw.average [W], power.draw.instant [W]\n"
        "2024/05/14 10:20:30.112, 0, 612.30 W, 598.41 W, 655.07 W\n",
    )
    ms = {m.name: m for m in importers.read_table(path).series}
    assert sorted(ms) == ["gpu.0.power_avg_mw", "gpu.0.power_instant_mw", "gpu.0.power_mw"]
    assert ms["gpu.0.power_avg_mw"].values.tolist() == [598410.0]
    assert ms["gpu.0.power_instant_mw"].values.tolist() == [655070.0]
    assert ms["gpu.0.power_mw"].values.tolist() == [612300.0]
    assert {m.unit for m in ms.values()} == {"mW"}


def test_nvidia_smi_wide_query_maps_fields_and_keeps_the_rest() -> None:
    got = importers.read_table(DATA / "nvidia_smi_query_wide.csv")
    ms = {m.name: m for m in got.series}
    assert ms["gpu.1.pstate"].values.tolist() == [0.0, 2.0]  # P0, P2 as the recorder's numbers
    assert ms["gpu.1.clock_event_reasons"].values.tolist() == [4.0, 1.0]  # hex bit masks
    assert ms["gpu.0.power_limit_mw"].values.tolist() == [700000.0, 700000.0]
    assert ms["gpu.0.temp_c"].unit == "C" and ms["gpu.0.mem_temp_c"].values.tolist() == [48.0]
    assert ms["gpu.0.fb_total_bytes"].values.tolist() == [81559.0 * MIB] * 2
    assert ms["gpu.0.sm_clock_mhz"].values.tolist() == [1980.0, 1755.0]
    assert ms["gpu.0.mem_util_pct"].values.tolist() == [61.0, 0.0]
    assert ms["gpu.0.pcie.link.gen.current"].values.tolist() == [5.0, 5.0]  # unmapped: its own name
    assert not any("fan" in n or n.endswith(".index") for n in ms)  # all [N/A]; the key
    assert got.labels["gpu.1.pci_bus_id"] == "00000000:2A:00.0"
    assert got.labels["gpu.0.name"] == "NVIDIA H100 80GB HBM3"


def test_nvidia_smi_gpu_that_changes_uuid_is_an_error(tmp_path: Path) -> None:
    text = (DATA / "nvidia_smi_query_2gpu.csv").read_text()
    text = text.replace("30.613, 0, GPU-5a3f", "30.613, 0, GPU-0000")
    with pytest.raises(ValidationError, match=r"x\.csv:4: .*gpu 0 .*GPU-0000"):
        importers.read_table(write(tmp_path, "x.csv", text))


def test_generic_key_columns(tmp_path: Path) -> None:
    text = "ts,rack,node,temp [C],fan\n1,a,1,40,900\n1,a,2,41,950\n2,a,1,42,\n2,b,1,39,800\n"
    got = importers.read_table(write(tmp_path, "racks.csv", text), keys=("rack", "node"))
    ms = {m.name: (m.timestamps.tolist(), m.values.tolist(), m.unit) for m in got.series}
    assert ms == {
        "rack.a.node.1.temp": ([1, 2], [40.0, 42.0], "C"),
        "rack.a.node.1.fan": ([1], [900.0], ""),
        "rack.a.node.2.temp": ([1], [41.0], "C"),
        "rack.a.node.2.fan": ([1], [950.0], ""),
        "rack.b.node.1.temp": ([2], [39.0], "C"),
        "rack.b.node.1.fan": ([2], [800.0], ""),
    }
    with pytest.raises(ValidationError, match=r"racks\.csv:1: --key 'slot': no such column"):
        importers.read_table(tmp_path / "racks.csv", keys=("slot",))
    bad = write(tmp_path, "bad.csv", "ts,host,cpu\n1,a/b,3\n")
    with pytest.raises(ValidationError, match=r"bad\.csv:2: column 'host': key value 'a/b'"):
        importers.read_table(bad, keys=("host",))


# ------------------------------------------------------------------ nvidia-smi dmon / pmon, dcgmi


def test_nvidia_smi_dmon_text() -> None:
    got = importers.read_table(DATA / "nvidia_smi_dmon.txt")
    ms = {m.name: m for m in got.series}
    t0 = utc(2024, 5, 14, 10, 20, 30)
    assert ms["gpu.0.power_mw"].values.tolist() == [612000.0, 121000.0]
    assert ms["gpu.0.power_mw"].timestamps.tolist() == [t0, t0 + S]
    assert ms["gpu.1.temp_c"].values.tolist() == [39.0, 40.0]
    assert ms["gpu.0.mem_temp_c"].values.tolist() == [48.0]  # '-' is no sample
    assert ms["gpu.1.util_pct"].values.tolist() == [95.0, 0.0]
    assert ms["gpu.1.fb_used_bytes"].values.tolist() == [40530.0 * MIB] * 2
    assert ms["gpu.0.gfx_clock_mhz"].values.tolist() == [1980.0, 1755.0]
    assert ms["gpu.0.bar1"].unit == "MB"  # unmapped: dmon's own name and unit
    assert "gpu.0.gpu" not in ms and "gpu.0.date" not in ms


def test_nvidia_smi_dmon_without_dates_is_refused_with_a_hint(tmp_path: Path) -> None:
    text = (
        "# gpu   pwr gtemp mtemp    sm   mem   enc   dec  mclk  pclk\n"
        "# Idx     W     C     C     %     %     %     %   MHz   MHz\n"
        "    0    70    48     -     5     1     0     0  7000  1350\n"
    )
    with pytest.raises(ValidationError, match=r"d\.txt:1: .*no date and time.*-o DT"):
        importers.read_table(write(tmp_path, "d.txt", text))


def test_nvidia_smi_pmon_text() -> None:
    got = importers.read_table(DATA / "nvidia_smi_pmon.txt")
    ms = {m.name: m for m in got.series}
    t0 = utc(2024, 5, 14, 10, 20, 30)
    assert ms["gpu.0.proc.48213.sm_util_pct"].values.tolist() == [96.0, 0.0]
    assert ms["gpu.0.proc.48213.sm_util_pct"].timestamps.tolist() == [t0, t0 + S]
    assert ms["gpu.0.proc.48213.mem_bytes"].values.tolist() == [40488.0 * MIB] * 2
    assert ms["gpu.1.proc.48377.mem_util_pct"].values.tolist() == [3.0]
    assert not any(".enc_util_pct" in n for n in ms)  # every cell '-'
    assert not any("gpu.1.proc.-" in n for n in ms)  # a row without a process is no sample


def test_dcgmi_dmon_with_timestamps() -> None:
    got = importers.read_table(DATA / "dcgmi_dmon_ts.txt")
    ms = {m.name: m for m in got.series}
    t0 = utc(2024, 5, 14, 10, 20, 30)
    assert ms["gpu.0.power_mw"].values.tolist() == [612304.0, 121113.0]
    assert ms["gpu.0.power_mw"].timestamps.tolist() == [t0 + 5 * MS, t0 + S + 6 * MS]
    assert ms["gpu.1.energy_mj"].kind == "counter" and ms["gpu.1.energy_mj"].unit == "mJ"
    assert ms["gpu.1.energy_mj"].values.tolist() == [1590471233.0, 1590981002.0]
    assert ms["gpu.0.util_pct"].values.tolist() == [97.0, 0.0]
    assert ms["gpu.0.sm_clock_mhz"].unit == "MHz"
    assert ms["gpu.1.fb_used_bytes"].values.tolist() == [40530.0 * MIB] * 2
    assert ms["gpu.0.smact"].values.tolist() == [0.941, 0.002] and ms["gpu.0.smact"].unit == ""
    assert ms["gpu.1.smact"].values.tolist() == [0.001]  # N/A: no sample


def test_dcgmi_dmon_without_timestamps_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match=r"dcgmi_dmon_plain\.txt:1: .*prints no time.*ts '"):
        importers.read_table(DATA / "dcgmi_dmon_plain.txt")


# ------------------------------------------------------------------ clocks that step back


def machine_temperature_like(rows: int = 400, back_at: int = 150) -> str:
    """A 5-minute sensor log whose clock steps back 55 minutes once (a clock change),
    with one timestamp written twice: the shape of the public machine-temperature log."""
    t = utc(2013, 12, 2, 21, 15, 0)
    lines = ["timestamp,value"]
    for i in range(rows):
        if i == back_at:
            t -= 60 * 60 * S  # 55 minutes back from the next 5-minute step
        stamp = np.datetime_as_string(np.datetime64(t, "ns"), unit="s").replace("T", " ")
        lines.append(f"{stamp},{70 + (i * 37 % 101) / 7:.6f}")
        if i == 20:
            lines.append(f"{stamp},{71.5:.6f}")  # the same time twice, another value
        t += 5 * 60 * S
    return "\n".join(lines) + "\n"


def test_backward_clock_step_imports_every_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: import stopped at the backward line and stored nothing."""
    path = write(tmp_path, "machine_temperature.csv", machine_temperature_like())
    with caplog.at_level(logging.WARNING, logger="snapcloud.importers.csv"):
        (m,) = read_csv(path)
    assert "machine_temperature.csv:153" in caplog.text and "back in time" in caplog.text
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert len(m) == len(rows) == 401
    want = np.array([r[0] for r in rows], dtype="datetime64[ns]").view(np.int64)
    assert sorted(m.timestamps.tolist()) == m.timestamps.tolist() == sorted(want.tolist())
    assert Counter(zip(m.timestamps.tolist(), m.values.tolist(), strict=True)) == Counter(
        zip(want.tolist(), [float(r[1]) for r in rows], strict=True)
    )
    repo = Repository(MemoryStore())
    snaps = import_files("plant", [path], window_ns=3600 * S)
    append_windows(repo.stream("plant", create=True), snaps)
    assert samples(repo, "plant") == file_samples([m])


def test_repeated_timestamps_keep_file_order(tmp_path: Path) -> None:
    text = "timestamp,value\n3,1\n1,2\n3,3\n1,4\n2,5\n3,6\n"
    (m,) = read_csv(write(tmp_path, "r.csv", text))
    assert m.timestamps.tolist() == [1, 1, 2, 3, 3, 3]
    assert m.values.tolist() == [2.0, 4.0, 5.0, 1.0, 3.0, 6.0]  # stable: file order among equals


# ------------------------------------------------------------------ strict numbers


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("1e309", "'1e309' is outside the float64 range"),
        ("-1e400", "'-1e400' is outside the float64 range"),
        ("9" * 5_000_000, "is outside the float64 range"),
        ("\u0661\u0662", "only ASCII digits"),
        ("1\u00b75", "cannot parse"),
    ],
)
def test_values_outside_float64_or_not_ascii_are_errors(
    tmp_path: Path, cell: str, needle: str
) -> None:
    path = write(tmp_path, "v.csv", f"timestamp,value\n1,2\n2,{cell}\n3,inf\n")
    with pytest.raises(ValidationError) as info:
        read_csv(path)
    assert f"{path}:3: column 'v'" in str(info.value) and needle in str(info.value)
    assert len(str(info.value)) < 300  # the offending cell is cut short in the message


def test_literal_infinities_are_values(tmp_path: Path) -> None:
    (m,) = read_csv(write(tmp_path, "v.csv", "ts,value\n1,inf\n2,-Infinity\n3,+inf\n4,1e308\n"))
    assert m.values.tolist() == [np.inf, -np.inf, np.inf, 1e308]


@pytest.mark.parametrize(
    ("cells", "scale", "unit_word"),
    [
        (["1715682030112", "1715682030613"], MS, "milliseconds"),
        (["1715682030112000", "1715682030613000"], 1000, "microseconds"),
        (["1715682030112000000", "1715682030613000000"], 1, None),
    ],
)
def test_integer_epochs_read_by_magnitude(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cells: list[str], scale: int, unit_word: str
) -> None:
    """Was: epochs in ms or us landed in 1970 without a word."""
    text = "timestamp,value\n" + "".join(f"{c},1\n" for c in cells)
    with caplog.at_level(logging.INFO, logger="snapcloud.importers.csv"):
        (m,) = read_csv(write(tmp_path, "e.csv", text))
    assert m.timestamps.tolist() == [int(c) * scale for c in cells]
    assert m.timestamps.tolist()[0] == utc(2024, 5, 14, 10, 20, 30) + 112 * MS
    if unit_word:
        assert f"epoch {unit_word}" in caplog.text and "[ns]" in caplog.text


def test_integer_epochs_of_mixed_magnitude_are_refused(tmp_path: Path) -> None:
    text = "timestamp,value\n1715682030112,1\n1715682030613000,2\n"
    with pytest.raises(ValidationError, match=r"e\.csv:3: column 'timestamp': .*milliseconds"):
        read_csv(write(tmp_path, "e.csv", text))
    # an explicit unit is what it says
    (m,) = read_csv(write(tmp_path, "n.csv", "timestamp [ns],value\n1715682030112,1\n"))
    assert m.timestamps.tolist() == [1715682030112]


def test_unicode_digit_timestamps_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"u\.csv:2: column 'timestamp': cannot parse"):
        read_csv(write(tmp_path, "u.csv", "timestamp,value\n\u0661\u0662,1\n"))


def test_cr_only_line_endings(tmp_path: Path) -> None:
    """Was: 'only a header' (classic Mac line endings, some loggers still write them)."""
    (m,) = read_csv(write(tmp_path, "cr.csv", "timestamp,value\r1,1.5\r2,2.5\r"))
    assert m.timestamps.tolist() == [1, 2] and m.values.tolist() == [1.5, 2.5]
    with pytest.raises(ValidationError, match=r"bad\.csv:3: column 'bad'"):
        read_csv(write(tmp_path, "bad.csv", "timestamp,value\r1,1\r2,x\r"))
