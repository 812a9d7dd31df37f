"""CSV files to metric series and windowed snapshots.

Shapes. The first column is the time column; its header is ``timestamp``,
``time``, ``ts`` or ``date`` (any case, optionally with a bracket unit). A *long*
file ``timestamp,value`` is one metric named after the file's stem (a stem that
is not a valid metric name is an error, never silently rewritten); any other
header, ``timestamp,<metric>,<metric>,...``, is a *wide* file with one metric per
column, in header order. Blank lines are skipped; spaces around cells are ignored.

Timestamps. The format is detected from the first data row and required of every
row; the column is then parsed in one numpy call where possible:

- ``YYYY-MM-DD[ HH:MM[:SS[.fffffffff]]]`` with ``-`` or ``/`` (nvidia-smi) in the
  date and a space or ``T`` before the time: UTC when no zone is given;
- the same followed by ``Z`` or an offset ``+hh:mm`` / ``+hhmm`` (converted to
  UTC; offsets may differ from row to row, at the cost of a per-row pass);
- an integer: epoch nanoseconds (a header unit ``[s]``, ``[ms]``, ``[us]`` or
  ``[ns]`` on the time column rescales it);
- a decimal number: epoch seconds, split at the point so that
  ``1700000000.123456789`` keeps every nanosecond (digits past the ninth are
  dropped).

Timestamps must not go backwards; repeated timestamps are kept (see
docs/architecture.md, D2: real exports such as the NAB files repeat rows).

Values parse exactly as Python's ``float()`` does, bit for bit (``nan``, ``inf``,
``-inf`` and ``-0.0`` included). A cell may carry a unit after a space
(``53.78 W``, ``0 %``) and a header may carry one in brackets as
``nvidia-smi --format=csv`` writes them (``power.draw [W]``); a column's unit is
the header's, else the cells', and cells that disagree with each other or with
the header are an error. An empty cell, ``N/A`` or any bracketed status
(``[N/A]``, ``[Not Supported]``, ``[Unknown Error]``) means "no sample in this row"
for that metric only. A column in which no cell is a number (nvidia-smi's
``name``, ``pstate``, hex ``clocks_event_reasons``) is skipped, with a warning on
this module's logger and without checking its header as a metric name; a file
left with no numeric column is an error.

Kinds. Every metric is a gauge except a name ending in ``_total``, the
Prometheus convention for counters; a unit in brackets is only ever a unit.

Errors are :class:`~snapcloud.errors.ValidationError` with one line saying what
and where, ``{path}:{line}: column {name!r}: ...`` (lines 1-based, as an editor
shows them), and ``path``/``line``/``column`` attributes.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from snapcloud.errors import ValidationError
from snapcloud.models import MetricSeries, ProfileSnapshot, validate_metric_name
from snapcloud.progress import ProgressCallback, ProgressUpdate

if TYPE_CHECKING:
    from snapcloud.index import IndexEntry
    from snapcloud.store import IncrementalSnapshotStore

__all__ = ["ImportOutcome", "append_windows", "cut_windows", "import_files", "read_csv"]

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_TIME_NAMES = frozenset({"timestamp", "time", "ts", "date"})
_TIME_UNITS = {"": 1, "ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9}
_HEADER_UNIT = re.compile(r"(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]")
_I64_MAX = 2**63 - 1
_MAX_WHOLE_SECONDS = _I64_MAX // 10**9 - 1  # so whole * 1e9 + fraction stays in int64
_YEARS = ("1678", "2261")  # whole years inside datetime64[ns]
_MISSING_CELL = re.compile(r"^(?:|\[.*\]|[Nn]/[Aa])$", re.MULTILINE)
# A unit after a number: spaces, then a token that cannot start a number ('1 2' is no unit).
_UNIT_SUFFIX = re.compile(r"[ \t]+([^\s\d.+-]\S*)\Z")
_UNIT_SUFFIXES = re.compile(r"[ \t]+([^\s\d.+-]\S*)$", re.MULTILINE)

_EPOCH_NS = re.compile(r"-?\d+")
_EPOCH_S = re.compile(r"-?\d+\.\d*")
_WALL = r"\d{4}(?P<sep>[-/])\d{2}(?P=sep)\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
_NAIVE = re.compile(_WALL)
_ZONED = re.compile(rf"(?P<base>{_WALL})(?P<zone>[Zz]|[+-]\d{{2}}:?\d{{2}})")
_FORMAT_NAMES = {
    _EPOCH_NS: "integer epoch nanoseconds",
    _EPOCH_S: "decimal epoch seconds",
    _NAIVE: "a date and time without a zone",
    _ZONED: "a date and time with Z or an offset",
}


def _fail(where: str, line: int | None, message: str, **context: Any) -> ValidationError:
    prefix = where if line is None else f"{where}:{line}"
    return ValidationError(f"{prefix}: {message}", path=where, line=line, **context)


def _cell_error(where: str, line: int, column: str, message: str) -> ValidationError:
    return _fail(where, line, f"column {column!r}: {message}", column=column)


def _split_header(cell: str) -> tuple[str, str]:
    """``'power.draw [W]'`` -> ``('power.draw', 'W')``; no brackets -> ``(cell, '')``."""
    cell = cell.strip()
    m = _HEADER_UNIT.fullmatch(cell)
    return (m["name"], m["unit"].strip()) if m else (cell, "")


# ------------------------------------------------------------------ reading


def read_csv(path: Path | str, *, text: str | None = None) -> list[MetricSeries]:
    """The metric series of one CSV file (``text``, if given, instead of its contents).

    Raises ``ValidationError`` with ``path:line`` for anything it cannot import.
    """
    p = Path(path)
    where = str(p)
    if text is None:
        text = _read_text(p, where)
    header, header_line, columns, lines = _table(text.removeprefix("\ufeff"), where)
    if not lines.size:
        raise _fail(where, header_line, "only a header, no data rows")
    width = len(header)
    time_name, time_unit = _split_header(header[0])
    if time_name.lower() not in _TIME_NAMES:
        raise _fail(
            where,
            header_line,
            f"first column {header[0].strip()!r} is not a time column "
            "(timestamp, time, ts or date)",
        )
    if width < 2:
        raise _fail(where, header_line, "no value column after the time column")
    ts = _parse_times([c.strip() for c in columns[0]], lines, where, time_name, time_unit)
    long_file = width == 2 and _split_header(header[1])[0].lower() == "value"
    out: list[MetricSeries] = []
    for col in range(1, width):
        name, unit = _split_header(header[col])
        if long_file:
            name = _stem_name(p, where)
        parsed = _parse_values(columns[col], lines, where, name, unit)
        if parsed is None:
            log.warning("%s: column %r holds no numbers; skipped", where, name or col + 1)
            continue
        present, values, cell_unit = parsed
        try:
            validate_metric_name(name, "metric name")
            kind = "counter" if name.endswith("_total") else "gauge"
            series_ts = ts if present is None else ts[present]
            out.append(MetricSeries(name, series_ts, values, kind=kind, unit=unit or cell_unit))
        except ValidationError as exc:
            raise _fail(where, header_line, f"column {col + 1}: {exc}", column=name) from None
    if not out:
        raise _fail(where, header_line, "no column holds numbers")
    seen: set[str] = set()
    for m in out:
        if m.name in seen:
            raise _fail(where, header_line, f"metric {m.name!r} appears in two columns")
        seen.add(m.name)
    return out


def _read_text(p: Path, where: str) -> str:
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValidationError(f"{where}: cannot read: {reason}", path=where) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _fail(
            where, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


Table = tuple[list[str], int, list[Sequence[str]], I64]


def _table(text: str, where: str) -> Table:
    """Header cells, the header's line, the data columns and the line of each data row.

    A line that is empty or only spaces is skipped. Raises ``ValidationError`` for
    an empty file or a row whose width is not the header's.
    """
    if '"' not in text:
        plain = _plain_table(text)
        if plain is not None:
            return plain
    return _quoted_table(text, where)


def _plain_table(text: str) -> Table | None:
    """The fast path: no quotes and every non-blank line as wide as the header.

    Splits in a few whole-text passes instead of a row at a time; ``None`` when the
    text does not qualify (the csv module then reads it and reports what is wrong).
    """
    physical = text.split("\n")
    commas = np.fromiter(
        map(str.count, physical, itertools.repeat(",")), dtype=np.int64, count=len(physical)
    )
    rows = np.flatnonzero(commas)
    if not rows.size or any(physical[i].strip() for i in np.flatnonzero(commas == 0).tolist()):
        return None
    width = int(commas[rows[0]]) + 1
    if not bool(np.all(commas[rows] == width - 1)):
        return None
    kept = physical if rows.size == len(physical) else [physical[i] for i in rows.tolist()]
    if len(kept) == 1:
        return kept[0].split(","), int(rows[0]) + 1, [[] for _ in range(width)], rows[1:] + 1
    cells = ",".join(kept[1:]).split(",")
    columns: list[Sequence[str]] = [cells[k::width] for k in range(width)]
    return kept[0].split(","), int(rows[0]) + 1, columns, rows[1:] + 1


def _quoted_table(text: str, where: str) -> Table:
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    rows: list[list[str]] = []
    starts: list[int] = []
    prev = 0
    try:
        for row in reader:
            if len(row) > 1 or (row and row[0].strip()):
                rows.append(row)
                starts.append(prev + 1)
            prev = reader.line_num
    except csv.Error as exc:
        raise _fail(where, reader.line_num, f"bad CSV: {exc}") from None
    if not rows:
        raise _fail(where, None, "empty file")
    header, data = rows[0], rows[1:]
    lines = np.array(starts[1:], dtype=np.int64)
    width = len(header)
    widths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
    bad = np.flatnonzero(widths != width)
    if bad.size:
        i = int(bad[0])
        raise _fail(where, int(lines[i]), f"{len(data[i])} cells where the header has {width}")
    columns: list[Sequence[str]] = (
        list(zip(*data, strict=True)) if data else [[] for _ in range(width)]
    )
    return header, starts[0], columns, lines


def _stem_name(p: Path, where: str) -> str:
    try:
        return validate_metric_name(p.stem, "metric name")
    except ValidationError as exc:
        raise _fail(
            where,
            None,
            f"a timestamp,value file takes its metric name from the file name, and {exc}; "
            "rename the file or name the column in the header",
        ) from None


# ------------------------------------------------------------------ timestamps


def _first_mismatch(cells: list[str], pattern: re.Pattern[str]) -> int | None:
    """The index of the first cell ``pattern`` does not fully match: one regex scan."""
    joined = "\n".join(cells)
    if joined.count("\n") == len(cells) - 1:
        m = re.compile(rf"^(?!(?:{pattern.pattern})$)", re.MULTILINE).search(joined)
        return None if m is None else joined.count("\n", 0, m.start())
    return next((i for i, c in enumerate(cells) if not pattern.fullmatch(c)), None)


def _parse_times(cells: list[str], lines: I64, where: str, column: str, unit: str) -> I64:
    """Epoch ns for a time column, in the format of its first cell; not going backwards."""
    first = cells[0]
    if _EPOCH_NS.fullmatch(first) or _EPOCH_S.fullmatch(first):
        scale = _TIME_UNITS.get(unit)
        if scale is None or (_EPOCH_S.fullmatch(first) and unit not in ("", "s")):
            raise _cell_error(
                where, int(lines[0]), column, f"unit [{unit}] does not fit epoch {first!r}"
            )
        if _EPOCH_NS.fullmatch(first):
            ts = _epoch_integers(cells, lines, where, column, scale)
        else:
            ts = _epoch_seconds(cells, lines, where, column)
    elif _NAIVE.fullmatch(first):
        _require(cells, _NAIVE, lines, where, column)
        ts = _datetimes(cells, lines, where, column)
    elif m := _ZONED.fullmatch(first):
        ts = _zoned(cells, m["zone"], lines, where, column)
    else:
        raise _cell_error(
            where,
            int(lines[0]),
            column,
            f"cannot parse {first!r} as a timestamp (YYYY-MM-DD HH:MM:SS, ISO-8601, "
            "epoch ns or epoch seconds)",
        )
    back = np.flatnonzero(ts[1:] < ts[:-1])
    if back.size:
        i = int(back[0]) + 1
        raise _cell_error(
            where,
            int(lines[i]),
            column,
            f"timestamp {cells[i]!r} is earlier than {cells[i - 1]!r} on line {int(lines[i - 1])}",
        )
    return ts


def _require(cells: list[str], pattern: re.Pattern[str], lines: I64, where: str, col: str) -> None:
    i = _first_mismatch(cells, pattern)
    if i is not None:
        raise _cell_error(
            where,
            int(lines[i]),
            col,
            f"cannot parse timestamp {cells[i]!r} as {_FORMAT_NAMES[pattern]} like {cells[0]!r}",
        )


def _out_of_range(where: str, line: int, column: str, cell: str) -> ValidationError:
    return _cell_error(where, line, column, f"timestamp {cell!r} is out of range (years 1678-2261)")


def _epoch_integers(cells: list[str], lines: I64, where: str, column: str, scale: int) -> I64:
    _require(cells, _EPOCH_NS, lines, where, column)
    numbers = list(map(int, cells))
    limit = _I64_MAX // scale
    if min(numbers) < -limit or max(numbers) > limit:
        i = next(i for i, n in enumerate(numbers) if abs(n) > limit)
        raise _cell_error(where, int(lines[i]), column, f"timestamp {cells[i]!r} is out of range")
    ts: I64 = np.array(numbers, dtype=np.int64) * np.int64(scale)
    if scale == 1 and ts.size and int(ts.min()) >= 0 and int(ts.max()) < 10**11:
        log.warning(
            "%s: column %r: integer timestamps are epoch nanoseconds and these all fall in the "
            "first 100 s of 1970; write the header as '%s [s]' if they are seconds",
            where,
            column,
            column,
        )
    return ts


def _epoch_seconds(cells: list[str], lines: I64, where: str, column: str) -> I64:
    _require(cells, _EPOCH_S, lines, where, column)
    parts = [c.partition(".") for c in cells]
    whole = [abs(int(w)) for w, _, _ in parts]
    if max(whole) > _MAX_WHOLE_SECONDS:
        i = next(i for i, w in enumerate(whole) if w > _MAX_WHOLE_SECONDS)
        raise _cell_error(where, int(lines[i]), column, f"timestamp {cells[i]!r} is out of range")
    frac = np.array([int((f + "000000000")[:9]) for _, _, f in parts], dtype=np.int64)
    magnitude = np.array(whole, dtype=np.int64) * np.int64(10**9) + frac
    negative = np.fromiter((c[0] == "-" for c in cells), dtype=np.bool_, count=len(cells))
    out: I64 = np.where(negative, -magnitude, magnitude)
    return out


def _datetimes(bases: list[str], lines: I64, where: str, column: str) -> I64:
    """Naive ``YYYY-MM-DD HH:MM:SS.f`` (``-`` or ``/``) strings as UTC, in one numpy call."""
    iso = [b.replace("/", "-", 2) for b in bases]
    if min(iso)[:4] < _YEARS[0] or max(iso)[:4] > _YEARS[1]:
        i = next(i for i, b in enumerate(iso) if not _YEARS[0] <= b[:4] <= _YEARS[1])
        raise _out_of_range(where, int(lines[i]), column, bases[i])
    try:
        return np.array(iso, dtype="datetime64[ns]").view(np.int64)
    except ValueError:
        for i, b in enumerate(iso):
            try:
                np.datetime64(b, "ns")
            except ValueError:
                raise _cell_error(
                    where, int(lines[i]), column, f"invalid date or time {bases[i]!r}"
                ) from None
        raise


def _zoned(cells: list[str], zone: str, lines: I64, where: str, column: str) -> I64:
    """Date-times with ``Z`` or an offset: one numpy call when every row has the first
    row's zone, a per-row pass over the zones when they differ (a DST change)."""
    n = len(zone)
    if all(c.endswith(zone) for c in cells):
        bases = [c[:-n] for c in cells]
        if _first_mismatch(bases, _NAIVE) is None:
            return _datetimes(bases, lines, where, column) - _offset_ns(
                zone, 0, lines, where, column
            )
    _require(cells, _ZONED, lines, where, column)
    matches = [_ZONED.fullmatch(c) for c in cells]
    bases = [m["base"] for m in matches if m is not None]
    zones = [m["zone"] for m in matches if m is not None]
    offsets = {z: _offset_ns(z, zones.index(z), lines, where, column) for z in set(zones)}
    shift = np.array([offsets[z] for z in zones], dtype=np.int64)
    # Bases lie within years 1678-2261 and offsets within a day: no int64 overflow.
    return _datetimes(bases, lines, where, column) - shift


def _offset_ns(zone: str, row: int, lines: I64, where: str, column: str) -> int:
    """``Z``, ``+hh:mm`` or ``+hhmm`` in nanoseconds east of UTC."""
    if zone in ("Z", "z"):
        return 0
    hh, mm = int(zone[1:3]), int(zone[-2:])
    if hh > 23 or mm > 59:
        raise _cell_error(where, int(lines[row]), column, f"invalid UTC offset {zone!r}")
    return (-1 if zone[0] == "-" else 1) * (hh * 3600 + mm * 60) * 10**9


# ------------------------------------------------------------------ values


def _is_missing(cell: str) -> bool:
    return not cell or (cell[0] == "[" and cell[-1] == "]") or cell.lower() == "n/a"


def _parse_values(
    raw: Sequence[str], lines: I64, where: str, name: str, header_unit: str
) -> tuple[Mask | None, F64, str] | None:
    """(rows with a sample or ``None`` for all, values, unit read from the cells).

    ``None`` when no cell holds a number. Every cell a plain number is one C-level
    pass of ``float()``; units and missing cells take a few whole-column string
    passes; :func:`_cell_by_cell` is the reference they fall back on, and the one
    that finds the line of an error.
    """
    try:
        return None, _floats(raw), ""
    except ValueError:
        pass
    cells = [c.strip() for c in raw]
    joined = "\n".join(cells)
    present: Mask | None = None
    if _MISSING_CELL.search(joined):
        present = np.fromiter((not _is_missing(c) for c in cells), dtype=np.bool_, count=len(cells))
        cells = list(itertools.compress(cells, present))
        if not cells:
            return None
        joined = "\n".join(cells)
    if joined.count("\n") == len(cells) - 1:  # no cell with a line break inside
        unit = _split_unit(cells[0])[1]
        suffix = f" {unit}"
        if unit and joined.endswith(suffix) and joined.count(suffix + "\n") == len(cells) - 1:
            # The usual case (nvidia-smi): one unit on every cell, cut off in one pass.
            numbers = joined.replace(suffix + "\n", "\n")[: -len(suffix)].split("\n")
            units = {unit}
        else:
            numbers = _UNIT_SUFFIXES.sub("", joined).split("\n")
            units = set(_UNIT_SUFFIXES.findall(joined))
        unit = header_unit or (min(units) if units else "")
        if units <= {unit}:
            try:
                return present, _floats(numbers), unit if units else ""
            except ValueError:
                pass
    rows = np.arange(len(raw)) if present is None else np.flatnonzero(present)
    parsed = _cell_by_cell(cells, lines[rows], where, name, header_unit)
    return None if parsed is None else (present, *parsed)


def _floats(cells: Sequence[str]) -> F64:
    """``float()`` of every cell, bit for bit; raises ``ValueError`` on the first that is not."""
    return np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))


def _split_unit(cell: str) -> tuple[str, str]:
    m = _UNIT_SUFFIX.search(cell)
    return (cell[: m.start()], m[1]) if m else (cell, "")


def _cell_by_cell(
    cells: list[str], lines: I64, where: str, name: str, header_unit: str
) -> tuple[F64, str] | None:
    """Values and unit of non-missing cells one at a time; ``None`` when none is a number."""
    if not any(_is_float(_split_unit(c)[0]) for c in set(cells)):
        return None
    parsed = [_split_unit(c) for c in cells]
    unit, unit_source = header_unit, f"the header's [{header_unit}]"
    values = np.empty(len(cells), dtype=np.float64)
    for i, (cell, (number, cell_unit), line) in enumerate(
        zip(cells, parsed, lines.tolist(), strict=True)
    ):
        try:
            values[i] = float(number)
        except ValueError:
            raise _cell_error(where, line, name, f"cannot parse {cell!r} as a number") from None
        if cell_unit and not unit:
            unit, unit_source = cell_unit, f"{cell_unit!r} on line {line}"
        elif cell_unit and cell_unit != unit:
            raise _cell_error(
                where, line, name, f"unit {cell_unit!r} of {cell!r} is not {unit_source}"
            )
    return values, unit


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ windows


def cut_windows(
    host: str,
    series: Sequence[MetricSeries],
    *,
    window_ns: int,
    fingerprint: str = "",
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[ProfileSnapshot]:
    """One snapshot per non-empty window ``[k * window_ns, (k + 1) * window_ns)``, in time order.

    Raises ``ValidationError`` for a bad window, host, label or a metric given twice.
    """
    if isinstance(window_ns, bool) or not isinstance(window_ns, int | np.integer):
        raise ValidationError(f"window_ns: expected an integer, got {window_ns!r}", field="window")
    if not 0 < window_ns <= _I64_MAX:
        raise ValidationError(f"window_ns: {window_ns} is not a positive int64", field="window")
    width = int(window_ns)
    metrics = list(series)
    names: set[str] = set()
    for m in metrics:
        if not isinstance(m, MetricSeries):
            raise ValidationError(
                f"series: expected MetricSeries, got {type(m).__name__}", field="series"
            )
        if m.name in names:
            raise ValidationError(f"series: metric {m.name!r} appears twice", field="series")
        names.add(m.name)
    metrics = [m for m in metrics if len(m)]
    if not metrics:
        return []
    # Window numbers, not bounds: (k + 1) * window may not fit in int64 at the far end.
    numbers = [np.floor_divide(m.timestamps, np.int64(width)) for m in metrics]
    windows = np.unique(np.concatenate([np.unique(q) for q in numbers]))
    cuts = [
        (
            np.searchsorted(q, windows, "left").tolist(),
            np.searchsorted(q, windows, "right").tolist(),
        )
        for q in numbers
    ]
    # Host, fingerprint, labels and metadata are validated once; the slices need no
    # checking (they are pieces of validated series, names checked above).
    shape = ProfileSnapshot(
        host,
        [],
        window_start=0,
        window_end=0,
        fingerprint=fingerprint,
        labels=labels,
        metadata=metadata,
    )
    out = []
    for j, k in enumerate(windows.tolist()):
        parts = []
        for m, (lo, hi) in zip(metrics, cuts, strict=True):
            a, b = lo[j], hi[j]
            if b > a:
                parts.append(
                    MetricSeries.trusted(m.name, m.kind, m.unit, m.timestamps[a:b], m.values[a:b])
                )
        out.append(
            ProfileSnapshot.trusted(
                host=shape.host,
                seq=0,
                window_start=k * width,
                window_end=(k + 1) * width,
                fingerprint=shape.fingerprint,
                labels=dict(shape.labels),
                metadata=dict(shape.metadata),
                metrics=tuple(parts),
            )
        )
    return out


def import_files(
    host: str, paths: Iterable[Path | str], *, window_ns: int, fingerprint: str = ""
) -> list[ProfileSnapshot]:
    """Read every file and cut windows over all their series together.

    Raises ``ValidationError`` for a bad file or a metric name found in two files.
    """
    series: list[MetricSeries] = []
    origin: dict[str, str] = {}
    for path in paths:
        for m in read_csv(path):
            if m.name in origin:
                raise ValidationError(
                    f"metric {m.name!r} is in both {origin[m.name]} and {path}",
                    field="files",
                    metric=m.name,
                )
            origin[m.name] = str(path)
            series.append(m)
    return cut_windows(host, series, window_ns=window_ns, fingerprint=fingerprint)


# ------------------------------------------------------------------ storing


@dataclass
class ImportOutcome:
    """What ``append_windows`` did: the entries it appended, and the windows already stored."""

    appended: list[IndexEntry] = field(default_factory=list)
    already_stored: list[IndexEntry] = field(default_factory=list)


def append_windows(
    stream: IncrementalSnapshotStore,
    snapshots: Sequence[ProfileSnapshot],
    *,
    on_each: Callable[[], None] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportOutcome:
    """Append the windows ``stream`` does not hold yet, in order; skip those it holds.

    An import is acknowledged by its end (exit 0). One that was interrupted (a
    crash, a kill, a lost connection) and is run again must not store a window
    twice: a window counts as stored when an entry of the stream has its window
    bounds and the content checksum the window would have at that entry's seq,
    and the snapshot read back at that seq is bit for bit the window. So a rerun
    appends exactly what the interrupted run did not, and the stream ends as an
    uninterrupted run would have left it. ``on_each`` is called once per window, and
    ``progress`` hears of the windows done and the bytes stored (``snapcloud.progress``).
    Raises what ``IncrementalSnapshotStore.append`` and ``get`` raise.
    """
    held: dict[tuple[int, int], list[IndexEntry]] = {}
    if snapshots:
        stream.refresh()
        for entry in stream.entries():
            held.setdefault((entry.window_start, entry.window_end), []).append(entry)
    outcome = ImportOutcome()
    stored = 0
    for i, snap in enumerate(snapshots, 1):
        found = _stored_as(stream, snap, held.get((snap.window_start, snap.window_end), []))
        if found is not None:
            outcome.already_stored.append(found)
        else:
            outcome.appended.append(stream.append(snap))
            stored += outcome.appended[-1].stored_bytes
        if on_each is not None:
            on_each()
        if progress is not None:
            progress(ProgressUpdate("windows", i, len(snapshots), stored, stream.host))
    return outcome


def _stored_as(
    stream: IncrementalSnapshotStore, snap: ProfileSnapshot, candidates: list[IndexEntry]
) -> IndexEntry | None:
    """The entry that holds ``snap`` already (checksum, then a bit-exact read), if any."""
    for entry in candidates:
        at_seq = snap.with_seq(entry.seq)
        if entry.checksum == at_seq.checksum and stream.get(entry.seq) == at_seq:
            return entry
    return None
