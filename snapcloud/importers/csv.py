"""CSV files to metric series and windowed snapshots.

Shapes: a *long* file ``timestamp,value`` is one metric named after the file's
stem; a *wide* file ``timestamp,<metric>,<metric>,...`` holds several. The first
column is the time column (``timestamp``, ``time``, ``ts`` or ``date``).

Timestamps, detected from the first data row and then required of every row:
``YYYY-MM-DD HH:MM:SS[.fff]`` (UTC), ISO-8601 (``T``, optional fraction, ``Z`` or
``+hh:mm``), ``YYYY/MM/DD HH:MM:SS.fff`` (nvidia-smi), integer epoch ns, or float
epoch seconds (split at the decimal point, so ``1700000000.123456789`` keeps its
nanoseconds).

Values parse exactly as Python's ``float()`` does (``nan``, ``inf``, ``-0.0``
included). A unit may follow after a space (``53.78 W``) and a header may carry
one in brackets as nvidia-smi writes them (``power.draw [W]``); the header's unit
wins, and a column whose cells disagree on their unit is an error. Empty cells and
``N/A`` / ``[N/A]`` mean "no sample here" for that metric only. A column in which
no cell is a number (nvidia-smi's ``name``) is skipped and reported in the log.
Every metric is a gauge, except names ending in ``_total`` (the Prometheus
convention for counters).

Errors are ``ValidationError`` with ``path:line`` (1-based, as an editor shows).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapcloud.errors import ValidationError
from snapcloud.models import MetricSeries, ProfileSnapshot, validate_metric_name

__all__ = ["cut_windows", "import_files", "read_csv"]

log = logging.getLogger(__name__)

_TIME_NAMES = {"timestamp", "time", "ts", "date"}
_MISSING = {"", "n/a", "[n/a]", "na", "[not supported]"}
_HEADER_UNIT = re.compile(r"^(?P<name>[^\[]+?)\s*\[(?P<unit>[^\]]*)\]$")
_INT = re.compile(r"^-?\d+$")
_FLOAT_SECONDS = re.compile(r"^-?\d+\.\d*$")
_DATETIME = re.compile(
    r"^(?P<date>\d{4}[-/]\d{2}[-/]\d{2})[ T](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?P<frac>\.\d{1,9})?(?P<zone>Z|z|[+-]\d{2}:?\d{2})?$"
)


def _fail(path: str, line: int, message: str) -> ValidationError:
    return ValidationError(f"{path}:{line}: {message}", path=path, line=line)


def _split_header(cell: str) -> tuple[str, str]:
    cell = cell.strip()
    m = _HEADER_UNIT.match(cell)
    return (m["name"].strip(), m["unit"].strip()) if m else (cell, "")


def read_csv(path: Path | str, *, text: str | None = None) -> list[MetricSeries]:
    """The metric series of one CSV file (see the module docstring). Raises ``ValidationError``."""
    p = Path(path)
    where = str(p)
    if text is None:
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ValidationError(f"{where}: cannot read: {exc.strerror}", path=where) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise _fail(where, line, "not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO(text)))
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not numbered:
        raise ValidationError(f"{where}: empty file", path=where)
    header_line, header = numbered[0]
    data = numbered[1:]
    if not data:
        raise _fail(where, header_line, "only a header, no data rows")
    time_name, _ = _split_header(header[0])
    if time_name.lower() not in _TIME_NAMES:
        raise _fail(
            where,
            header_line,
            f"first column {header[0].strip()!r} is not a time column "
            "(timestamp, time, ts or date)",
        )
    width = len(header)
    if width < 2:
        raise _fail(where, header_line, "no value column")
    for line, r in data:
        if len(r) != width:
            raise _fail(where, line, f"{len(r)} cells where the header has {width}")
    lines = np.array([line for line, _ in data], dtype=np.int64)
    ts = _parse_times([r[0].strip() for _, r in data], lines, where)
    long_file = width == 2 and _split_header(header[1])[0].lower() == "value"
    out = []
    for col in range(1, width):
        name, unit = _split_header(header[col])
        if long_file:
            name = p.stem
        try:
            validate_metric_name(name, "metric")
        except ValidationError as exc:
            raise _fail(where, header_line, f"column {col + 1}: {exc}") from None
        parsed = _parse_values([r[col] for _, r in data], lines, where, name)
        if parsed is None:
            log.info("%s: column %r holds no numbers; skipped", where, name)
            continue
        present, values, cell_unit = parsed
        series_ts = ts[present]
        _check_increasing(series_ts, lines[present], where, name)
        kind = "counter" if name.endswith("_total") else "gauge"
        out.append(MetricSeries(name, series_ts, values, kind=kind, unit=unit or cell_unit))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _fail(where, header_line, f"metric {dup!r} appears in two columns")
    return out


def _parse_times(cells: list[str], lines: np.ndarray, where: str) -> np.ndarray:
    first = cells[0]
    if _INT.match(first):
        return _each(cells, lines, where, _INT, int, "integer epoch ns")
    if _FLOAT_SECONDS.match(first):
        return _each(cells, lines, where, _FLOAT_SECONDS, _seconds_to_ns, "epoch seconds")
    m = _DATETIME.match(first)
    if m is None:
        raise _fail(where, int(lines[0]), f"cannot parse timestamp {first!r}")
    zone = m["zone"]
    if zone in (None, "Z", "z"):
        # Fast path: one numpy call for the whole column, all in UTC.
        normalized = []
        for i, c in enumerate(cells):
            mm = _DATETIME.match(c)
            if mm is None or (mm["zone"] or None) not in (None, "Z", "z"):
                raise _fail(where, int(lines[i]), f"cannot parse timestamp {c!r} like {first!r}")
            normalized.append(f"{mm['date'].replace('/', '-')}T{mm['time']}{mm['frac'] or ''}")
        try:
            return np.array(normalized, dtype="datetime64[ns]").astype(np.int64)
        except ValueError:
            for i, c in enumerate(normalized):
                try:
                    np.datetime64(c, "ns")
                except ValueError:
                    raise _fail(
                        where, int(lines[i]), f"invalid date or time {cells[i]!r}"
                    ) from None
            raise
    return _each(cells, lines, where, _DATETIME, _offset_to_ns, "ISO-8601 with offset")


def _each(
    cells: list[str], lines: np.ndarray, where: str, pattern: re.Pattern[str], conv: Any, what: str
) -> np.ndarray:
    out = np.empty(len(cells), dtype=np.int64)
    for i, c in enumerate(cells):
        if not pattern.match(c):
            raise _fail(where, int(lines[i]), f"timestamp {c!r} is not {what} like the first row")
        try:
            out[i] = conv(c)
        except (ValueError, OverflowError):
            raise _fail(where, int(lines[i]), f"timestamp {c!r} is out of range") from None
    return out


def _seconds_to_ns(cell: str) -> int:
    whole, _, frac = cell.partition(".")
    if len(frac) > 9:
        frac = frac[:9]
    ns = abs(int(whole)) * 10**9 + int(frac.ljust(9, "0") or "0")
    return -ns if cell.startswith("-") else ns


def _offset_to_ns(cell: str) -> int:
    from snapcloud.timeparse import parse_instant

    return parse_instant(cell.replace("/", "-", 2), field="timestamp")


def _parse_values(
    cells: list[str], lines: np.ndarray, where: str, name: str
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(rows present, values, unit from the cells) or ``None`` when no cell is a number."""
    present = np.zeros(len(cells), dtype=np.bool_)
    values = np.empty(len(cells), dtype=np.float64)
    units: set[str] = set()
    first_bad: tuple[int, str] | None = None
    numbers = 0
    for i, raw in enumerate(cells):
        cell = raw.strip()
        if cell.lower() in _MISSING:
            continue
        number, _, unit = cell.partition(" ")
        try:
            if "_" in number:
                raise ValueError
            values[i] = float(number)
        except ValueError:
            if first_bad is None:
                first_bad = (i, cell)
            continue
        present[i] = True
        numbers += 1
        if unit.strip():
            units.add(unit.strip())
    if numbers == 0:
        return None
    if first_bad is not None:
        i, cell = first_bad
        raise _fail(where, int(lines[i]), f"column {name!r}: cannot parse {cell!r} as a number")
    if len(units) > 1:
        raise _fail(where, int(lines[0]), f"column {name!r}: mixed units {sorted(units)}")
    return present, values[present], units.pop() if units else ""


def _check_increasing(ts: np.ndarray, lines: np.ndarray, where: str, name: str) -> None:
    if ts.size > 1:
        bad = np.flatnonzero(ts[1:] <= ts[:-1])
        if bad.size:
            i = int(bad[0]) + 1
            what = "duplicated" if ts[i] == ts[i - 1] else "out of order"
            raise _fail(
                where,
                int(lines[i]),
                f"column {name!r}: timestamp {what} (previous row {int(lines[i - 1])})",
            )


def cut_windows(
    host: str,
    series: Sequence[MetricSeries],
    *,
    window_ns: int,
    fingerprint: str = "",
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[ProfileSnapshot]:
    """One snapshot per non-empty window of ``window_ns``, aligned to multiples of it."""
    if window_ns <= 0:
        raise ValidationError(f"window: {window_ns} ns is not positive", field="window")
    starts = [np.unique(np.floor_divide(m.timestamps, window_ns)) for m in series if len(m)]
    if not starts:
        return []
    windows = np.unique(np.concatenate(starts))
    out = []
    for w in windows.tolist():
        lo, hi = w * window_ns, (w + 1) * window_ns
        ms = []
        for m in series:
            a, b = np.searchsorted(m.timestamps, [lo, hi], side="left")
            if b > a:
                ms.append(
                    MetricSeries.trusted(m.name, m.kind, m.unit, m.timestamps[a:b], m.values[a:b])
                )
        out.append(
            ProfileSnapshot(
                host,
                ms,
                window_start=lo,
                window_end=hi,
                fingerprint=fingerprint,
                labels=labels,
                metadata=metadata,
            )
        )
    return out


def import_files(
    host: str, paths: Iterable[Path | str], *, window_ns: int, fingerprint: str = ""
) -> list[ProfileSnapshot]:
    """Read every file, refuse a metric name found in two files, cut windows over them all."""
    series: list[MetricSeries] = []
    seen: dict[str, str] = {}
    for path in paths:
        for m in read_csv(path):
            if m.name in seen:
                raise ValidationError(
                    f"metric {m.name!r} is in both {seen[m.name]} and {path}", field="files"
                )
            seen[m.name] = str(path)
            series.append(m)
    return cut_windows(host, series, window_ns=window_ns, fingerprint=fingerprint)
