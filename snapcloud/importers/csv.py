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
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from snapcloud._regex import compile_linear
from snapcloud.errors import BackendError, ValidationError
from snapcloud.importers._gpu_fields import (
    NVSMI_FIELDS,
    NVSMI_KEYS,
    NVSMI_LABELS,
    GpuField,
    parse_hex,
    parse_pstate,
    scale_exactly,
)
from snapcloud.importers._samples import unseen
from snapcloud.layout import tier_of_key
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotQuery, validate_metric_name
from snapcloud.progress import ProgressCallback, ProgressUpdate

if TYPE_CHECKING:
    from snapcloud.index import IndexEntry
    from snapcloud.store import HostStream

__all__ = [
    "ImportOutcome",
    "ImportedFile",
    "append_windows",
    "cut_windows",
    "import_files",
    "read_csv",
    "read_table",
]

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_TIME_NAMES = frozenset({"timestamp", "time", "ts", "date"})
_TIME_UNITS = {"": 1, "ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9}
# Patterns run over cells use RE2 (linear time): with ``re`` a cell of many spaces
# took quadratic time in the unit patterns (8,000 spaces: 10 s).
_HEADER_UNIT = compile_linear(r"(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]")
_I64_MAX = 2**63 - 1
_MAX_WHOLE_SECONDS = _I64_MAX // 10**9 - 1  # so whole * 1e9 + fraction stays in int64
_YEARS = ("1678", "2261")  # whole years inside datetime64[ns]
_MISSING_CELL = re.compile(r"^(?:|\[.*\]|[Nn]/[Aa])$", re.MULTILINE)
# A unit after a number: spaces, then a token that cannot start a number ('1 2' is no unit).
_UNIT_SUFFIX = compile_linear(r"[ \t]+([^\s\d.+-]\S*)$")
_UNIT_SUFFIXES = compile_linear(r"(?m)[ \t]+([^\s\d.+-]\S*)$")

# [0-9], not \d: Python's \d also matches other scripts' digits ('\u0661\u0662'), and int()
# would take them; a timestamp is ASCII or it is not one.
_EPOCH_NS = re.compile(r"-?[0-9]+")
_EPOCH_S = re.compile(r"-?[0-9]+\.[0-9]*")
_WALL = (
    r"[0-9]{4}(?P<sep>[-/])[0-9]{2}(?P=sep)[0-9]{2}"
    r"(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?"
)
_NAIVE = re.compile(_WALL)
_ZONED = re.compile(rf"(?P<base>{_WALL})(?P<zone>[Zz]|[+-][0-9]{{2}}:?[0-9]{{2}})")
# Integer epochs without a unit: by magnitude (|n| of the first row), milliseconds from
# 1e11 (1973-03-03 in ms; 100 s after the epoch in ns) and microseconds from 1e14 (1973 in
# us; 28 hours after the epoch in ns) up to 1e17 (1973 in ns). Below 1e11 and from 1e17 on
# the column is nanoseconds as before.
_EPOCH_MAGNITUDES = (
    (10**11, 10**14, 10**6, "milliseconds"),
    (10**14, 10**17, 10**3, "microseconds"),
)
_MAX_EPOCH_DIGITS = 20  # int64 has 19 digits; longer cells are out of range, not parsed
_CELL_SHOWN = 40  # characters of a cell an error message quotes
_READ_CACHE = 8  # stored snapshots an import keeps decoded while it compares windows
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


def _show(cell: str) -> str:
    """A cell as an error message quotes it: cut short past ``_CELL_SHOWN`` characters."""
    if len(cell) <= _CELL_SHOWN:
        return cell
    return f"{cell[: _CELL_SHOWN // 2]}...({len(cell)} characters)"


def _split_header(cell: str) -> tuple[str, str]:
    """``'power.draw [W]'`` -> ``('power.draw', 'W')``; no brackets -> ``(cell, '')``."""
    cell = cell.strip()
    m = _HEADER_UNIT.fullmatch(cell)
    return (m["name"], m["unit"].strip()) if m else (cell, "")


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class ImportedFile:
    """What one file holds: its metric series and the host labels it states (GPU UUIDs)."""

    series: list[MetricSeries]
    labels: dict[str, str] = field(default_factory=dict)


def read_csv(path: Path | str, *, text: str | None = None) -> list[MetricSeries]:
    """The metric series of one CSV file (``text``, if given, instead of its contents).

    Raises ``ValidationError`` with ``path:line`` for anything it cannot import.
    """
    return read_table(path, text=text).series


def read_table(
    path: Path | str, *, text: str | None = None, keys: Sequence[str] = ()
) -> ImportedFile:
    """The series and labels of one file: a CSV (module doc; ``keys`` name key columns),
    or the text ``nvidia-smi dmon``/``pmon`` and ``dcgmi dmon`` print (``_monitors``).

    Raises ``ValidationError`` with ``path:line`` for anything it cannot import.
    """
    p = Path(path)
    where = str(p)
    if text is None:
        text = _read_text(p, where)
    text = _newlines(text.removeprefix("\ufeff"))
    # The monitor formats read with this module's cell parsers, so they import it: here
    # they are imported on use, not at module load (that would be circular).
    from snapcloud.importers import _monitors

    if _monitors.is_monitor_text(text):
        if keys:
            raise _fail(where, None, "--key is for CSV files, not monitor text")
        return _monitors.read_monitor(text, where)
    return _read_csv_text(p, where, text, tuple(keys))


def _newlines(text: str) -> str:
    """``\\r\\n`` and a lone ``\\r`` (classic Mac, some loggers) as ``\\n``, so line numbers
    count what an editor shows."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_csv_text(p: Path, where: str, text: str, keys: tuple[str, ...]) -> ImportedFile:
    header, header_line, columns, lines = _table(text, where)
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
    heads = [_split_header(h) for h in header]
    table = _Columns(where, header_line, heads, columns, lines, ts)
    keyed = _key_plan(table, keys)
    if keyed is not None:
        got = _keyed_series(table, keyed, p)
    else:
        got = ImportedFile(_plain_series(table, p))
    if not got.series:
        raise _fail(where, header_line, "no column holds numbers")
    seen: set[str] = set()
    for m in got.series:
        if m.name in seen:
            raise _fail(where, header_line, f"metric {m.name!r} appears in two columns")
        seen.add(m.name)
    return got


@dataclass(frozen=True)
class _Columns:
    """A parsed CSV table: header names and units, raw columns, data lines, timestamps."""

    where: str
    header_line: int
    heads: list[tuple[str, str]]
    columns: list[Sequence[str]]
    lines: I64
    ts: I64
    key_cols: list[int] = field(default_factory=list)


def _plain_series(t: _Columns, p: Path) -> list[MetricSeries]:
    """A long file (one metric named after the file) or a wide one (a metric a column)."""
    long_file = len(t.heads) == 2 and t.heads[1][0].lower() == "value"
    out: list[MetricSeries] = []
    for col in range(1, len(t.heads)):
        name, unit = t.heads[col]
        if long_file:
            name = _stem_name(p, t.where)
        parsed = _parse_values(t.columns[col], t.lines, t.where, name, unit)
        if parsed is None:
            log.warning("%s: column %r holds no numbers; skipped", t.where, name or col + 1)
            continue
        present, values, cell_unit = parsed
        rows = None if present is None else np.flatnonzero(present)
        kind = "counter" if name.endswith("_total") else "gauge"
        out.append(_series(t, col, name, kind, unit or cell_unit, rows, values))
    return out


def _series(
    t: _Columns, col: int, name: str, kind: str, unit: str, rows: I64 | None, values: F64
) -> MetricSeries:
    """One series from ``values`` at table ``rows`` (``None``: all), in time order: rows
    that step back are moved, stably, so equal timestamps keep the file's order."""
    ts = t.ts if rows is None else t.ts[rows]
    if ts.size > 1 and bool(np.any(ts[1:] < ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    try:
        validate_metric_name(name, "metric name")
        return MetricSeries(name, ts, values, kind=kind, unit=unit)
    except ValidationError as exc:
        raise _fail(t.where, t.header_line, f"column {col + 1}: {exc}", column=name) from None


# ------------------------------------------------------------------ key columns


Prefix = Callable[["_Columns", tuple[str, ...], int, int], str]


@dataclass(frozen=True)
class _KeyPlan:
    """Which columns key a row and how: ``prefix(table, key, line, order)`` names a key's
    metrics (``order``: how many keys appeared before it), ``fields`` maps a tool's
    column to the recorder's field, ``label_cols`` are per-key facts kept as labels."""

    key_cols: list[int]
    prefix: Prefix
    fields: Mapping[str, GpuField] = field(default_factory=dict)
    label_cols: dict[int, str] = field(default_factory=dict)


def _key_plan(t: _Columns, keys: tuple[str, ...]) -> _KeyPlan | None:
    names = [n for n, _ in t.heads]
    if keys:
        cols = []
        for k in keys:
            if k not in names[1:]:
                raise _fail(
                    t.where,
                    t.header_line,
                    f"--key {k!r}: no such column (columns: {', '.join(names[1:])})",
                )
            cols.append(names.index(k))
        return _KeyPlan(cols, _generic_prefix)
    key = next((k for k in NVSMI_KEYS if k in names), None)
    if key is None or not any(n in NVSMI_FIELDS for n in names):
        return None  # not nvidia-smi --query-gpu with a GPU column: an ordinary table
    labels = {names.index(n): label for n, label in NVSMI_LABELS.items() if n in names}
    return _KeyPlan([names.index(key)], _nvsmi_prefix, NVSMI_FIELDS, labels)


def _generic_prefix(t: _Columns, key: tuple[str, ...], line: int, order: int) -> str:
    """``<column>.<value>`` for each key column, joined by dots."""
    parts = []
    for k, value in zip(t.key_cols, key, strict=True):
        column = t.heads[k][0]
        parts.append(key_part(t.where, line, column, column, value))
    return ".".join(parts)


def key_part(where: str, line: int, column: str, label: str, value: str) -> str:
    """``<label>.<value>`` when that can be part of a metric name, else ``ValidationError``."""
    try:
        validate_metric_name(f"{label}.{value}", "key")
    except ValidationError:
        raise _cell_error(
            where,
            line,
            column,
            f"key value {_show(value)!r} cannot be part of a metric name "
            "(letters, digits, '_.:%-')",
        ) from None
    return f"{label}.{value}"


def _nvsmi_prefix(t: _Columns, key: tuple[str, ...], line: int, order: int) -> str:
    """``gpu.<index>``; by ``uuid`` or ``pci.bus_id``, GPUs are numbered in the order they
    first appear (nvidia-smi prints them in index order every sample)."""
    column = t.heads[t.key_cols[0]][0]
    if column != "index":
        return f"gpu.{order}"
    return gpu_prefix(t.where, line, column, key[0])


def gpu_prefix(where: str, line: int, column: str, index: str) -> str:
    """``gpu.<index>`` for a GPU index cell; raises ``ValidationError`` for another cell."""
    if not (index.isascii() and index.isdigit() and len(index) < 6):
        raise _cell_error(where, line, column, f"GPU index {_show(index)!r} is no number")
    return f"gpu.{int(index)}"


def _keyed_series(t: _Columns, plan: _KeyPlan, p: Path) -> ImportedFile:
    """One series per (key, value column); raises ``ValidationError`` naming the cell."""
    t = _Columns(t.where, t.header_line, t.heads, t.columns, t.lines, t.ts, plan.key_cols)
    gid, prefixes = _group_rows(t, plan)
    labels = _group_labels(t, plan, gid, prefixes)
    skip = set(plan.key_cols) | set(plan.label_cols)
    values_at = [c for c in range(1, len(t.heads)) if c not in skip]
    long_file = len(values_at) == 1 and t.heads[values_at[0]][0].lower() == "value"
    out: list[MetricSeries] = []
    for col in values_at:
        head, unit = t.heads[col]
        gpu = plan.fields.get(head)
        if gpu is not None and unit not in ("", gpu.source_unit):
            gpu = None  # another unit than the tool's own: keep the column as it is
        parsed = _parse_gpu_cells(t, col, gpu) if gpu and gpu.parse != "number" else None
        if parsed is None:
            parsed = _parse_values(t.columns[col], t.lines, t.where, head, unit)
        if parsed is None:
            log.warning("%s: column %r holds no numbers; skipped", t.where, head or col + 1)
            continue
        present, values, cell_unit = parsed
        rows = np.arange(t.ts.size) if present is None else np.flatnonzero(present)
        field_name = _stem_name(p, t.where) if long_file else head
        kind = "counter" if field_name.endswith("_total") else "gauge"
        unit = unit or cell_unit
        if gpu is not None:
            field_name, unit, kind = gpu.name, gpu.unit, gpu.kind
            values = scale_exactly(values, gpu.scale)
        groups = gid[rows]
        for g in np.unique(groups).tolist():
            sel = groups == g
            name = f"{prefixes[g]}.{field_name}"
            out.append(_series(t, col, name, kind, unit, rows[sel], values[sel]))
    return ImportedFile(out, labels)


def _group_rows(t: _Columns, plan: _KeyPlan) -> tuple[I64, list[str]]:
    """Each row's group and each group's metric prefix; raises ``ValidationError`` for a
    row without a key or a key that cannot be part of a metric name."""
    cells = [[c.strip() for c in t.columns[k]] for k in plan.key_cols]
    keys = list(zip(*cells, strict=True))
    for i, key in enumerate(keys):
        missing = next((j for j, v in enumerate(key) if _is_missing(v)), None)
        if missing is not None:
            column = t.heads[plan.key_cols[missing]][0]
            raise _cell_error(t.where, int(t.lines[i]), column, "a key column needs a value")
    index: dict[tuple[str, ...], int] = {}
    gid = np.fromiter(
        (index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys)
    )
    firsts = np.unique(gid, return_index=True)[1]
    prefixes = [plan.prefix(t, key, int(t.lines[firsts[g]]), g) for g, key in enumerate(index)]
    return gid, prefixes


def _group_labels(t: _Columns, plan: _KeyPlan, gid: I64, prefixes: list[str]) -> dict[str, str]:
    """Per-GPU facts (``gpu.<i>.uuid``, ...): one value per GPU in the whole file.

    Raises ``ValidationError`` at the first row that gives a GPU a second value.
    """
    labels: dict[str, str] = {}
    for col, label in plan.label_cols.items():
        column = t.heads[col][0]
        for i, (g, raw) in enumerate(zip(gid.tolist(), t.columns[col], strict=True)):
            value = raw.strip()
            if _is_missing(value):
                continue
            key = f"{prefixes[g]}.{label}"
            held = labels.setdefault(key, value)
            if held != value:
                gpu = prefixes[g].removeprefix("gpu.")
                raise _cell_error(
                    t.where,
                    int(t.lines[i]),
                    column,
                    f"gpu {gpu} is {_show(value)!r} here but {_show(held)!r} before; "
                    "import the parts before and after the change separately",
                )
    return labels


def _parse_gpu_cells(t: _Columns, col: int, gpu: GpuField) -> tuple[Mask | None, F64, str] | None:
    """A column nvidia-smi prints as words (``P0``, ``0x...04``) as the recorder's numbers."""
    parse = parse_pstate if gpu.parse == "pstate" else parse_hex
    cells = [c.strip() for c in t.columns[col]]
    present = np.fromiter((not _is_missing(c) for c in cells), dtype=np.bool_, count=len(cells))
    if not present.any():
        return None
    values = np.empty(int(present.sum()), dtype=np.float64)
    for j, i in enumerate(np.flatnonzero(present).tolist()):
        try:
            values[j] = parse(cells[i])
        except ValueError as exc:
            raise _cell_error(t.where, int(t.lines[i]), t.heads[col][0], str(exc)) from None
    return present, values, gpu.unit


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
            ts = _epoch_integers(cells, lines, where, column, scale, unit)
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
        log.warning(
            "%s:%d: column %r: %d row(s) step back in time, the first here (%r after %r on "
            "line %d); every row is kept and stored in time order (docs/architecture.md, D2)",
            where,
            int(lines[i]),
            column,
            back.size,
            _show(cells[i]),
            _show(cells[i - 1]),
            int(lines[i - 1]),
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


def _epoch_integers(
    cells: list[str], lines: I64, where: str, column: str, scale: int, unit: str
) -> I64:
    _require(cells, _EPOCH_NS, lines, where, column)
    too_long = next((i for i, c in enumerate(cells) if len(c) > _MAX_EPOCH_DIGITS), None)
    if too_long is not None:  # int() of it would be slow or refused outright
        raise _cell_error(
            where,
            int(lines[too_long]),
            column,
            f"timestamp {_show(cells[too_long])!r} is out of range",
        )
    numbers = list(map(int, cells))
    if not unit:
        scale = _scale_by_magnitude(numbers, cells, lines, where, column)
    limit = _I64_MAX // scale
    if min(numbers) < -limit or max(numbers) > limit:
        i = next(i for i, n in enumerate(numbers) if abs(n) > limit)
        raise _cell_error(where, int(lines[i]), column, f"timestamp {cells[i]!r} is out of range")
    ts: I64 = np.array(numbers, dtype=np.int64) * np.int64(scale)
    if not unit and ts.size and int(ts.min()) >= 0 and int(ts.max()) < 10**11:
        log.warning(
            "%s: column %r: integer timestamps are epoch nanoseconds and these all fall in the "
            "first 100 s of 1970; write the header as '%s [s]' if they are seconds",
            where,
            column,
            column,
        )
    return ts


def _scale_by_magnitude(
    numbers: list[int], cells: list[str], lines: I64, where: str, column: str
) -> int:
    """Nanoseconds per unit of a unitless integer epoch column, from its first row's
    magnitude (``_EPOCH_MAGNITUDES``); every row must then have that magnitude.

    Raises ``ValidationError`` naming the first row of another magnitude.
    """
    first = abs(numbers[0])
    for low, high, scale, name in _EPOCH_MAGNITUDES:
        if low <= first < high:
            bad = next((i for i, n in enumerate(numbers) if not low <= abs(n) < high), None)
            if bad is not None:
                raise _cell_error(
                    where,
                    int(lines[bad]),
                    column,
                    f"timestamp {_show(cells[bad])!r} is not epoch {name} like {cells[0]!r} on "
                    f"line {int(lines[0])}; write the header as '{column} [ms]', '[us]' or "
                    "'[ns]' to say which",
                )
            log.info(
                "%s: column %r: integer timestamps read as epoch %s (by their magnitude); "
                "write the header as '%s [ns]' if they are nanoseconds",
                where,
                column,
                name,
                column,
            )
            return scale
    return 1


def _epoch_seconds(cells: list[str], lines: I64, where: str, column: str) -> I64:
    _require(cells, _EPOCH_S, lines, where, column)
    parts = [c.partition(".") for c in cells]
    too_long = next((i for i, p in enumerate(parts) if len(p[0]) > _MAX_EPOCH_DIGITS), None)
    if too_long is not None:
        raise _cell_error(
            where,
            int(lines[too_long]),
            column,
            f"timestamp {_show(cells[too_long])!r} is out of range",
        )
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
    """``float()`` of every cell, bit for bit; raises ``ValueError`` on the first that is not,
    and when a cell is not ASCII or overflows to an infinity without saying ``inf``
    (:func:`_strict_float` then finds the cell and says which rule it broke)."""
    values = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    if not "".join(cells).isascii():
        raise ValueError("a cell is not ASCII")
    inf = np.flatnonzero(np.isinf(values))
    if inf.size and not all(_is_literal_inf(cells[i]) for i in inf.tolist()):
        raise ValueError("a cell overflows float64")
    return values


def _is_literal_inf(cell: str) -> bool:
    return cell.strip().lstrip("+-").lower() in ("inf", "infinity")


def _strict_float(number: str) -> float:
    """``float(number)``, refusing what ``float`` lets through: digits of other scripts
    (``'\u0661\u0662'`` is 12 to Python) and values past the float64 range (``1e309`` and a
    long enough digit string become ``inf``) unless the cell is the literal ``inf``.

    Raises ``ValueError`` with the reason as its message.
    """
    if not number.isascii():
        raise ValueError("only ASCII digits are numbers here")
    value = float(number)
    if math.isinf(value) and not _is_literal_inf(number):
        raise ValueError("is outside the float64 range (write inf for an infinity)")
    return value


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
            values[i] = _strict_float(number)
        except ValueError as exc:
            shown = _show(cell)
            reason = (
                f"cannot parse {shown!r} as a number"
                if str(exc).startswith("could not convert")
                else f"{shown!r} {exc}"
                if str(exc).startswith("is outside")
                else f"cannot parse {shown!r} as a number: {exc}"
            )
            raise _cell_error(where, line, name, reason) from None
        if cell_unit and not unit:
            unit, unit_source = cell_unit, f"{cell_unit!r} on line {line}"
        elif cell_unit and cell_unit != unit:
            raise _cell_error(
                where, line, name, f"unit {cell_unit!r} of {_show(cell)!r} is not {unit_source}"
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
    host: str,
    paths: Iterable[Path | str],
    *,
    window_ns: int,
    fingerprint: str = "",
    keys: Sequence[str] = (),
) -> list[ProfileSnapshot]:
    """Read every file (``read_table``; ``keys`` name key columns of CSV files) and cut
    windows over all their series together; the files' labels go on every window.

    Raises ``ValidationError`` for a bad file, a metric name found in two files, or two
    files that give one label two values.
    """
    series: list[MetricSeries] = []
    origin: dict[str, str] = {}
    labels: dict[str, str] = {}
    for path in paths:
        got = read_table(path, keys=keys)
        for m in got.series:
            if m.name in origin:
                raise ValidationError(
                    f"metric {m.name!r} is in both {origin[m.name]} and {path}",
                    field="files",
                    metric=m.name,
                )
            origin[m.name] = str(path)
            series.append(m)
        for key, value in got.labels.items():
            if labels.setdefault(key, value) != value:
                raise ValidationError(
                    f"{path}: label {key!r} is {value!r} here but {labels[key]!r} in an "
                    "earlier file",
                    field="files",
                    path=str(path),
                )
    return cut_windows(
        host, series, window_ns=window_ns, fingerprint=fingerprint, labels=labels or None
    )


# ------------------------------------------------------------------ storing


@dataclass
class ImportOutcome:
    """What ``append_windows`` did: the entries it appended, the entries that already held
    every sample of a window, and how many samples were already stored."""

    appended: list[IndexEntry] = field(default_factory=list)
    already_stored: list[IndexEntry] = field(default_factory=list)
    samples_already_stored: int = 0
    range_hints_written: int = 0


def append_windows(
    stream: HostStream,
    snapshots: Sequence[ProfileSnapshot],
    *,
    on_each: Callable[[], None] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportOutcome:
    """Append what ``stream`` does not hold yet, sample by sample, in order.

    Exactly once by sample: a sample is its metric, timestamp and value bits, with
    multiplicity. For each window, the stored snapshots whose windows overlap it and
    that share a metric with it are read, and only the samples they do not hold are
    appended, as a snapshot of the same window (windows may then overlap; queries answer
    by time). So importing the same file twice stores it once, a grown file stores its
    new rows, a file that fills a gap stores the gap, and an interrupted import run
    again appends exactly what the first run did not. A window with nothing new is
    reported in ``already_stored`` and not appended.

    The index is read for the windows' time range only: range hints and tier tables say
    which keyframe groups lie outside it, and their segments are not read (at most one
    read per group in range, plus the open group's, which every append needs). At the
    end, every sealed group whose segment was read or written and that has no range
    hint gets one (one put each, once), so the next import skips it.
    ``on_each`` is called once per window, and ``progress`` hears of the windows done
    and the bytes stored (``snapcloud.progress``). Raises ``ValidationError`` when a window
    overlaps what only the archive tier holds (downsampled: which samples it holds cannot
    be told), and what ``HostStream.append`` and ``read`` raise.
    """
    outcome = ImportOutcome()
    if not snapshots:
        return outcome
    stream.relist()  # another writer, or an earlier run, may have appended since
    lo = min(s.window_start for s in snapshots)
    hi = max(s.window_end for s in snapshots)
    held = [(set(n), e) for n, e in stream.serving(SnapshotQuery(start_ns=lo, end_ns=hi))]
    # a stored window wider than the import's overlaps several of them: read it once
    read: OrderedDict[tuple[int, int], ProfileSnapshot] = OrderedDict()
    stored = 0
    for i, snap in enumerate(snapshots, 1):
        names = set(snap.metric_names)
        near = [
            e
            for n, e in held
            if e.window_start < snap.window_end
            and snap.window_start < e.window_end
            and not names.isdisjoint(n)
        ]
        new = snap if not near else unseen(snap, _stored(stream, snap, near, read))
        outcome.samples_already_stored += snap.sample_count - (new.sample_count if new else 0)
        if new is None:
            outcome.already_stored.extend(near)
        else:
            entry = stream.append(new)
            outcome.appended.append(entry)
            stored += entry.stored_bytes
            held.append((set(new.metric_names), entry))
        if on_each is not None:
            on_each()
        if progress is not None:
            progress(ProgressUpdate("windows", i, len(snapshots), stored, stream.host))
    # The groups this import read or sealed get range hints, so the next import (or a
    # query of other times) skips them whether or not the compactor ever runs here.
    # A hint only saves reads: one that cannot be written (no right to, a failing
    # store) costs the next import those reads, not this import its success.
    try:
        outcome.range_hints_written = stream.write_range_hints()
    except BackendError as exc:
        log.warning("host %r: range hints not written (%s)", stream.host, exc)
    return outcome


def _stored(
    stream: HostStream,
    snap: ProfileSnapshot,
    entries: list[IndexEntry],
    read: OrderedDict[tuple[int, int], ProfileSnapshot],
) -> list[ProfileSnapshot]:
    """The stored snapshots of ``entries`` (the last few kept in ``read``); raises
    ``ValidationError`` for an archive one."""
    archived = [e for e in entries if tier_of_key(e.key) == "archive"]
    if archived:
        raise ValidationError(
            f"host {stream.host!r}: the window starting {snap.window_start} overlaps "
            f"snapshots the archive tier holds downsampled (seq {archived[0].seq}); which "
            "of its samples are stored cannot be told, so it is not imported",
            host=stream.host,
            seq=archived[0].seq,
        )
    out = []
    for e in entries:
        key = (e.seq, e.checksum)
        got = read.get(key)
        if got is None:
            got = read[key] = stream.read(e)
            while len(read) > _READ_CACHE:
                read.popitem(last=False)
        out.append(got)
    return out
