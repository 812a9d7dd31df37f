"""The text NVIDIA's monitors print: ``nvidia-smi dmon``/``pmon`` and ``dcgmi dmon``.

``nvidia-smi dmon -o DT`` (and ``pmon -o DT``) print a ``#`` line of column names, a
``#`` line of units, then one row per GPU (per process for pmon) and sample, columns
split by spaces; ``-`` is "no value", a pmon row whose pid is ``-`` is a GPU without a
process. The header is printed again now and then. ``-o DT`` puts the local date and time
(``20240514 10:20:30``) first; read as UTC like every zoneless time here. Without it the
rows carry no time, and the file is refused with the hint to record with ``-o DT``.

``dcgmi dmon`` prints ``#Entity`` and the short field names, a line of units starting with
``ID`` (left-aligned under the names; a unit may be blank), then rows ``GPU 0 ...`` with
``N/A`` for no value, the header again every few dozen rows. It prints no time, so the
file must carry one at the start of every line, the way ``ts`` (moreutils) adds it:
``dcgmi dmon -e 155,156 | ts '%Y-%m-%dT%H:%M:%.S%z'`` (ISO-8601 with an offset, or epoch
seconds ``%.s``). A file without it is refused with that hint.

Series are named like the recorder's (``snapcloud.importers._gpu_fields``): GPU ``i``'s
fields ``gpu.<i>.<field>``, a process's ``gpu.<i>.proc.<pid>.<field>``, another DCGM
entity's ``<entity>.<id>.<field>`` (``gpu-i.3.smact``). pmon's ``type`` and ``command``
columns are not stored (words, not numbers; the recorder's fingerprint names processes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snapcloud.importers._gpu_fields import DCGM_FIELDS, DMON_FIELDS, PMON_FIELDS
from snapcloud.importers.csv import (
    ImportedFile,
    _cell_error,
    _Columns,
    _fail,
    _keyed_series,
    _KeyPlan,
    _parse_times,
    gpu_prefix,
    key_part,
)

__all__ = ["is_monitor_text", "read_monitor"]

_DATE = re.compile(r"[0-9]{8}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")
_NO_VALUE = "-"


def is_monitor_text(text: str) -> bool:
    """Whether ``text`` is monitor output (its first line a ``#`` header) rather than CSV."""
    first = text.lstrip().split("\n", 1)[0]
    return first.startswith("#") or "#Entity" in first


def read_monitor(text: str, where: str) -> ImportedFile:
    """The series of ``nvidia-smi dmon``/``pmon`` or ``dcgmi dmon`` output (module doc).

    Raises ``ValidationError`` with ``where:line`` for anything it cannot import.
    """
    first = text.lstrip().split("\n", 1)[0]
    if "#Entity" in first:
        return _dcgmi(text, where)
    return _smi(text, where)


@dataclass
class _Rows:
    """Rows gathered from monitor text: time cells, cells per column, line numbers."""

    times: list[str] = field(default_factory=list)
    cells: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def add(self, line: int, time: str, cells: list[str]) -> None:
        self.times.append(time)
        self.cells.append([c if c not in (_NO_VALUE, "N/A") else "" for c in cells])
        self.lines.append(line)

    def table(self, where: str, header_line: int, heads: list[tuple[str, str]]) -> _Columns:
        if not self.cells:
            raise _fail(where, header_line, "only a header, no data rows")
        lines = np.array(self.lines, dtype=np.int64)
        ts = _parse_times(self.times, lines, where, "time", "")
        columns = [list(col) for col in zip(*self.cells, strict=True)]
        return _Columns(where, header_line, [("timestamp", ""), *heads], [[], *columns], lines, ts)


# ------------------------------------------------------------------ nvidia-smi dmon / pmon


def _smi(text: str, where: str) -> ImportedFile:
    names: list[str] | None = None
    units: list[str] | None = None
    header_line = 0
    rows = _Rows()
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            tokens = line[1:].split()
            if "gpu" in tokens:
                if names is None:
                    names, header_line = tokens, n
                    _require_date_time(names, where, n)
                elif tokens != names:
                    raise _fail(where, n, "the columns changed; import each part on its own")
            elif "Idx" in tokens and names is not None:
                if units is None and len(tokens) != len(names):
                    raise _fail(where, n, f"{len(tokens)} units for {len(names)} columns")
                units = units or tokens
            continue
        if names is None or units is None:
            raise _fail(where, n, "a row before the '#' lines naming the columns and units")
        cells = line.split()
        if "command" in names and len(cells) > len(names):  # a command name with spaces
            cells = [*cells[: len(names) - 1], " ".join(cells[len(names) - 1 :])]
        if len(cells) != len(names):
            raise _fail(where, n, f"{len(cells)} cells where the header has {len(names)}")
        row = dict(zip(names, cells, strict=True))
        if "pid" in row and row["pid"] == _NO_VALUE:
            continue  # a GPU without a process: no sample
        if not (_DATE.fullmatch(row["Date"]) and _TIME.fullmatch(row["Time"])):
            raise _cell_error(where, n, "Date", f"cannot parse {row['Date']} {row['Time']!r}")
        d = row["Date"]
        kept = [c for name, c in row.items() if name not in _SMI_DROP]
        rows.add(n, f"{d[:4]}-{d[4:6]}-{d[6:]} {row['Time']}", kept)
    if names is None or units is None:
        raise _fail(where, header_line or None, "no '#' lines naming the columns and units")
    heads = [(nm, u) for nm, u in zip(names, units, strict=True) if nm not in _SMI_DROP]
    table = rows.table(where, header_line, heads)
    pmon = "pid" in names
    plan = _KeyPlan([1, 2] if pmon else [1], _pmon_prefix if pmon else _dmon_prefix)
    plan = _KeyPlan(plan.key_cols, plan.prefix, PMON_FIELDS if pmon else DMON_FIELDS)
    return _keyed_series(table, plan, Path(where))


_SMI_DROP = frozenset({"Date", "Time", "type", "command"})


def _require_date_time(names: list[str], where: str, line: int) -> None:
    if "Date" not in names or "Time" not in names:
        tool = "pmon" if "pid" in names else "dmon"
        raise _fail(
            where,
            line,
            f"nvidia-smi {tool} output with no date and time on its rows; record it with "
            f"'nvidia-smi {tool} -o DT' so that each row says when it was sampled",
        )


def _dmon_prefix(t: _Columns, key: tuple[str, ...], line: int, order: int) -> str:
    return gpu_prefix(t.where, line, "gpu", key[0])


def _pmon_prefix(t: _Columns, key: tuple[str, ...], line: int, order: int) -> str:
    gpu = gpu_prefix(t.where, line, "gpu", key[0])
    return f"{gpu}.{key_part(t.where, line, 'pid', 'proc', key[1])}"


# ------------------------------------------------------------------ dcgmi dmon


@dataclass
class _DcgmHeader:
    """The field names (lower case) and units of a ``dcgmi dmon`` header."""

    names: list[str]
    starts: list[int]  # each name's column, relative to '#Entity'
    units: list[str] | None = None


def _dcgmi(text: str, where: str) -> ImportedFile:
    header: _DcgmHeader | None = None
    header_line = 0
    rows = _Rows()
    for n, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        at = raw.find("#Entity")
        if at >= 0:
            got = _dcgm_names(raw, at)
            if header is None:
                if not raw[:at].strip():
                    raise _no_dcgm_time(where, n)
                header, header_line = got, n
            elif got.names != header.names:
                raise _fail(where, n, "the fields changed; import each part on its own")
            continue
        if header is None:
            raise _fail(where, n, "a row before the '#Entity' line naming the fields")
        time, _, rest = raw.strip().partition(" ")
        tokens = rest.split()
        if tokens and tokens[0] == "ID":
            if header.units is None:
                header.units = _dcgm_units(rest, header)
            continue
        if len(tokens) != len(header.names) + 2:
            raise _fail(
                where, n, f"{len(tokens) - 2} values where the header has {len(header.names)}"
            )
        rows.add(n, time, tokens)
    if header is None:
        raise _fail(where, None, "no '#Entity' line naming the fields")
    units = header.units or [""] * len(header.names)
    heads = [("entity", ""), ("id", ""), *zip(header.names, units, strict=True)]
    table = rows.table(where, header_line, heads)
    return _keyed_series(table, _KeyPlan([1, 2], _dcgm_prefix, DCGM_FIELDS), Path(where))


def _no_dcgm_time(where: str, line: int) -> Exception:
    return _fail(
        where,
        line,
        "dcgmi dmon prints no time on its rows; prefix each line with one as it is read, "
        "e.g. dcgmi dmon -e 155,156 | ts '%Y-%m-%dT%H:%M:%.S%z' (moreutils), and import that",
    )


def _dcgm_names(raw: str, at: int) -> _DcgmHeader:
    names, starts = [], []
    for m in re.finditer(r"\S+", raw[at:]):
        if m.start() == 0:
            continue  # '#Entity' itself
        names.append(m.group().lower())
        starts.append(m.start())
    return _DcgmHeader(names, starts)


def _dcgm_units(rest: str, header: _DcgmHeader) -> list[str]:
    """Units by column: each unit token belongs to the field whose name starts at or
    before it (dcgmi left-aligns both; a blank unit leaves its field's unit empty)."""
    units = [""] * len(header.names)
    at = rest.find("ID")
    for m in re.finditer(r"\S+", rest[at:]):
        if m.start() == 0:
            continue  # 'ID'
        before = [i for i, s in enumerate(header.starts) if s <= m.start()]
        if before:
            units[before[-1]] = m.group()
    return units


def _dcgm_prefix(t: _Columns, key: tuple[str, ...], line: int, order: int) -> str:
    entity, ident = key
    if entity == "GPU":
        return gpu_prefix(t.where, line, "id", ident)
    return key_part(t.where, line, "entity", entity.lower(), ident)
