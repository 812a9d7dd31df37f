"""Results as JSON, CSV or Parquet bytes, and the Hive-partitioned Parquet export.

The export writes long format, one row per (timestamp, metric)::

    {dest}/host={host}/date={YYYY-MM-DD}/part-{export}-{n:05d}.parquet
    {dest}/_SUCCESS

with columns ``timestamp`` (``timestamp[ns, tz=UTC]``), ``metric``, ``gpu`` (the
``<index>`` of a ``gpu.<index>.<field>`` metric, null for others), ``value``
(float64, bit for bit), ``unit``, ``kind``, ``fingerprint`` and, with
``labels=True``, one ``label_<name>`` column per host label (non-alphanumeric
characters of the name become ``_``). ``host`` and ``date`` are the Hive
partition columns (in the path, not in the files). Rows in a file are sorted by
metric, then timestamp (ties in stored order). Memory stays bounded: a host's rows are
flushed when the next host starts or when ``max_rows_per_file`` are buffered.
``dest`` is a local directory, ``file:///abs/dir``, or any store URL
(``s3://bucket/prefix``), written with plain puts.

Modes, as Spark's ``DataFrameWriter.mode``: ``error`` (the default) refuses a
destination that holds data; ``overwrite`` replaces what it holds; ``append`` adds
files beside it. ``{export}`` names the export by what it selects (a hash of the
repository, the selector and the columns asked for), so the same export run again
writes the same file names: before writing, its own earlier files are deleted, so a
rerun (of a killed export, or of a finished ``append``) converges instead of adding
rows twice. In ``error`` mode the destination counts as holding data unless all it
holds is files of this very export without ``_SUCCESS`` (a killed attempt of it).

``_SUCCESS`` is written last, after every data file: JSON listing the data files the
destination holds (``files``) and what this export wrote. The first thing an export
does is delete it, so a destination without ``_SUCCESS`` is an export that has not
finished (killed, or failed): readers that honour the marker (Spark, Hadoop) skip it,
and its file list says which files a finished export left. Query engines ignore files
whose names start with ``_``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from snapcloud._strict_json import strict_dumps
from snapcloud.backends import ObjectStore, open_store
from snapcloud.errors import BackendError, SnapcloudError, ValidationError
from snapcloud.models import ProfileSnapshot
from snapcloud.progress import ProgressCallback
from snapcloud.query._api import DEFAULT_WORKERS, scan
from snapcloud.query._executor import Budget
from snapcloud.query._planner import HostPlan
from snapcloud.query._result import QueryResult, QueryStats
from snapcloud.query._selectors import Selector, gpu_index
from snapcloud.store import Repository
from snapcloud.timeparse import format_ns

__all__ = [
    "EXPORT_MODES",
    "FORMATS",
    "TIME_FORMATS",
    "ExportReport",
    "export_parquet",
    "format_result",
]

FORMATS = ("table", "json", "jsonl", "csv", "parquet")
TIME_FORMATS = ("ns", "iso")
EXPORT_MODES = ("error", "overwrite", "append")
SUCCESS = "_SUCCESS"
_PART = re.compile(r"part-([0-9a-f]{16})-[0-9]{5}\.parquet")
_LAYOUT = re.compile(r"host=[^/]+/date=[0-9]{4}-[0-9]{2}-[0-9]{2}/[^/]+\.parquet")
_DAY_NS = 86_400 * 10**9
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SnapcloudError(
            "Parquet needs pyarrow: pip install 'snapcloud[parquet]'", field="format"
        ) from None
    return pa, pq


def _csv_cell(value: Any, column: str, iso: bool) -> Any:
    if value is None:
        return ""
    if iso and column == "time" and isinstance(value, int):
        return format_ns(value)
    return repr(value) if isinstance(value, float) else value


def format_result(result: QueryResult, fmt: str, *, time_format: str = "ns") -> bytes:
    """``result`` as ``json``, ``jsonl`` (one object per row), ``csv`` or ``parquet`` bytes.

    JSON is strict: non-finite values are the strings ``"NaN"``, ``"+Inf"``, ``"-Inf"``.
    ``time_format="iso"`` writes CSV times as ISO-8601 (JSON carries both). Raises
    ``ValidationError`` for an unknown format.
    """
    if time_format not in TIME_FORMATS:
        raise ValidationError(
            f"--time-format: {time_format!r} is not one of {', '.join(TIME_FORMATS)}",
            field="time_format",
        )
    if fmt == "json":
        return (strict_dumps(result.to_json()) + "\n").encode()
    if fmt == "jsonl":
        return "".join(strict_dumps(row) + "\n" for row in result.to_json()["rows"]).encode()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(result.columns)
        iso = time_format == "iso"
        for rec in result.records():
            writer.writerow([_csv_cell(v, c, iso) for c, v in rec.items()])
        return buf.getvalue().encode()
    if fmt == "parquet":
        pa, pq = _pyarrow()
        sink = pa.BufferOutputStream()
        pq.write_table(result.to_arrow(), sink, compression="zstd")
        return bytes(sink.getvalue().to_pybytes())
    raise ValidationError(
        f"--format: {fmt!r} is not one of {', '.join(f for f in FORMATS if f != 'table')}",
        field="format",
    )


@dataclass
class ExportReport:
    """What an export wrote: the partition files (relative keys), rows and bytes."""

    dest: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    bytes_written: int = 0
    stats: QueryStats = field(default_factory=QueryStats)
    mode: str = "error"
    export_id: str = ""
    deleted: list[str] = field(default_factory=list)


class _Dest:
    """Where partition files go: a local directory, or an object store."""

    def __init__(self, dest: str, endpoint_url: str | None) -> None:
        parts = urlsplit(dest)
        self.store: ObjectStore | None = None
        self.root: Path | None = None
        if parts.scheme in ("", "file"):
            path = parts.path if parts.scheme == "file" else dest
            bad_file_url = parts.netloc not in ("", "localhost") or not path.startswith("/")
            if parts.scheme == "file" and bad_file_url:
                raise ValidationError(
                    f"--dest: {dest!r} needs an absolute path: file:///abs/dir", field="dest"
                )
            self.root = Path(path).expanduser().resolve()
            if self.root.exists() and not self.root.is_dir():
                raise ValidationError(f"--dest: {self.root} is not a directory", field="dest")
            self.description = str(self.root)
        else:
            self.store = open_store(dest, endpoint_url=endpoint_url)
            self.description = self.store.description

    def keys(self) -> list[str]:
        """Every object or file under the destination (relative keys), sorted."""
        if self.store is not None:
            return sorted(info.key for info in self.store.list(""))
        assert self.root is not None
        if not self.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".")  # our own temp files
        )

    def delete(self, key: str) -> None:
        if self.store is not None:
            self.store.delete(key)
            return
        assert self.root is not None
        try:
            (self.root / key).unlink(missing_ok=True)
        except OSError as exc:
            raise BackendError(
                f"cannot delete {self.root / key}: {exc.strerror}", key=key
            ) from None

    def write(self, key: str, data: bytes) -> None:
        if self.store is not None:
            self.store.put(key, data)
            return
        assert self.root is not None
        path = self.root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{uuid.uuid4().hex}")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise BackendError(f"cannot write {path}: {exc.strerror}", key=key) from None


def _day(ns: int) -> str:
    return str(np.datetime64(ns * _DAY_NS, "ns").astype("datetime64[D]"))


_Chunk = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int32], int]


class _HiveWriter:
    """Buffers one host's rows and writes them partitioned by day."""

    def __init__(
        self, dest: _Dest, report: ExportReport, labels: bool, max_rows: int, budget: Budget
    ) -> None:
        self.export_id = report.export_id
        self.dest = dest
        self.report = report
        self.labels = labels
        self.max_rows = max_rows
        self.budget = budget
        self.pa, self.pq = _pyarrow()
        self.host: HostPlan | None = None
        self._names: dict[str, int] = {}
        self._name_list: list[str] = []
        self._meta: list[tuple[str, str]] = []
        self._fps: dict[str, int] = {}
        self._fp_list: list[str] = []
        self._chunks: list[_Chunk] = []
        self._rows = 0
        self._parts: dict[tuple[str, str], int] = {}

    def _code(self, table: dict[str, int], items: list[str], value: str) -> int:
        code = table.get(value)
        if code is None:
            code = table[value] = len(items)
            items.append(value)
        return code

    def add(self, hp: HostPlan, snap: ProfileSnapshot) -> int:
        if self.host is not None and hp.host != self.host.host:
            self.flush()
        self.host = hp
        ms = [m for m in snap.metrics if len(m)]
        if not ms:
            return 0
        codes = []
        for m in ms:
            code = self._code(self._names, self._name_list, m.name)
            if code == len(self._meta):
                self._meta.append((m.unit, m.kind))
            codes.append(code)
        lens = [len(m) for m in ms]
        ts = np.concatenate([m.timestamps for m in ms])
        vals = np.concatenate([m.values for m in ms])
        metric = np.repeat(np.array(codes, dtype=np.int32), lens)
        fp = self._code(self._fps, self._fp_list, snap.fingerprint)
        self._chunks.append((ts, vals, metric, fp))
        self._rows += ts.size
        self.budget.hold(20 * ts.size, "export rows")
        if self._rows >= self.max_rows:
            self.flush()
        return int(ts.size)

    def flush(self) -> None:
        if not self._chunks or self.host is None:
            return
        pa = self.pa
        ts = np.concatenate([c[0] for c in self._chunks])
        vals = np.concatenate([c[1] for c in self._chunks])
        metric = np.concatenate([c[2] for c in self._chunks])
        fps = np.repeat(
            np.array([c[3] for c in self._chunks], dtype=np.int32),
            [c[0].size for c in self._chunks],
        )
        self._chunks.clear()
        self.budget.release(20 * self._rows)
        self._rows = 0
        days = ts // _DAY_NS
        order = np.lexsort((ts, metric, days))
        ts, vals, metric, fps, days = ts[order], vals[order], metric[order], fps[order], days[order]
        bounds = np.flatnonzero(np.append(True, days[1:] != days[:-1]))
        names = pa.array(self._name_list, type=pa.string())
        units = pa.array([u for u, _ in self._meta], type=pa.string())
        kinds = pa.array([k for _, k in self._meta], type=pa.string())
        fp_names = pa.array(self._fp_list, type=pa.string())
        gpus = pa.array([gpu_index(n) for n in self._name_list], type=pa.int32())
        host = self.host
        for lo, hi in zip(bounds.tolist(), [*bounds[1:].tolist(), ts.size], strict=True):
            m = pa.array(metric[lo:hi])
            cols: dict[str, Any] = {
                "timestamp": pa.array(ts[lo:hi], type=pa.timestamp("ns", tz="UTC")),
                "metric": names.take(m),
                "gpu": gpus.take(m),
                "value": pa.array(vals[lo:hi], type=pa.float64()),
                "unit": units.take(m),
                "kind": kinds.take(m),
                "fingerprint": fp_names.take(pa.array(fps[lo:hi])),
            }
            if self.labels:
                for name, value in sorted(host.labels.items()):
                    col = "label_" + _LABEL_CHARS.sub("_", name)
                    cols[col] = pa.array([value] * (hi - lo), type=pa.string()).dictionary_encode()
            date = _day(int(days[lo]))
            part = self._parts.get((host.host, date), 0)
            self._parts[(host.host, date)] = part + 1
            key = f"host={host.host}/date={date}/part-{self.export_id}-{part:05d}.parquet"
            sink = pa.BufferOutputStream()
            self.pq.write_table(pa.table(cols), sink, compression="zstd")
            data = bytes(sink.getvalue().to_pybytes())
            self.dest.write(key, data)
            self.report.files.append(key)
            self.report.rows += hi - lo
            self.report.bytes_written += len(data)


def export_parquet(
    repo: Repository,
    selector: Selector,
    dest: str,
    *,
    endpoint_url: str | None = None,
    labels: bool = False,
    max_rows_per_file: int = 1_000_000,
    workers: int = DEFAULT_WORKERS,
    mode: str = "error",
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Write the selected samples to ``dest`` as Hive-partitioned Parquet (see module doc:
    layout, ``mode``, the ``_SUCCESS`` marker).

    ``progress`` hears of the snapshots read, as in ``scan``.

    Raises ``ValidationError`` for a bad ``dest`` or ``mode`` and, in ``error`` mode, for a
    destination that holds data; ``BackendError`` when writing fails (the destination then
    has no ``_SUCCESS``); ``SnapcloudError`` when pyarrow is missing.
    """
    if max_rows_per_file < 1:
        raise ValidationError("max_rows_per_file: must be positive", field="max_rows_per_file")
    if mode not in EXPORT_MODES:
        raise ValidationError(
            f"--mode: {mode!r} is not one of {', '.join(EXPORT_MODES)}", field="mode"
        )
    target = _Dest(dest, endpoint_url)
    export_id = _export_id(repo, selector, labels, max_rows_per_file)
    report = ExportReport(dest=target.description, mode=mode, export_id=export_id)
    held = target.keys()
    _clear(target, held, mode, export_id, report)
    budget = Budget(repo.config.max_query_memory_bytes)
    writer = _HiveWriter(target, report, labels, max_rows_per_file, budget)
    report.stats = scan(
        repo,
        selector,
        writer.add,
        budget=budget,
        workers=workers,
        with_catalog=labels,
        progress=progress,
    )
    writer.flush()
    kept = [k for k in held if k not in report.deleted and k != SUCCESS]
    marker = {
        "version": 1,
        "files": sorted({*(k for k in kept if _is_data(k)), *report.files}),
        "rows": report.rows,
        "export": {"id": export_id, "mode": mode, "files": sorted(report.files)},
    }
    target.write(SUCCESS, (json.dumps(marker, separators=(",", ":")) + "\n").encode())
    return report


def _export_id(repo: Repository, selector: Selector, labels: bool, max_rows: int) -> str:
    """16 hex digits naming an export by what it selects and writes (not by when)."""
    what = json.dumps(
        [repo.description, selector.model_dump(mode="json"), labels, max_rows],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def _is_data(key: str) -> bool:
    return key.endswith(".parquet") and not key.rsplit("/", 1)[-1].startswith(("_", "."))


def _own(key: str, export_id: str) -> bool:
    m = _PART.fullmatch(key.rsplit("/", 1)[-1])
    return m is not None and m.group(1) == export_id


def _clear(target: _Dest, held: list[str], mode: str, export_id: str, report: ExportReport) -> None:
    """Make room for the export as ``mode`` says: ``_SUCCESS`` first (from here on the
    destination reads as unfinished), then what the export replaces."""
    if mode == "error":
        finished = SUCCESS in held
        foreign = [k for k in held if k != SUCCESS and (finished or not _own(k, export_id))]
        if foreign or finished:
            raise ValidationError(
                f"--dest {target.description} holds data ({len(held)} object(s), e.g. "
                f"{(foreign or held)[0]}); use --mode overwrite to replace it or --mode append "
                "to add to it",
                field="dest",
            )
    if mode == "overwrite":
        other = [k for k in held if k != SUCCESS and _LAYOUT.fullmatch(k) is None]
        if other:  # overwrite replaces an export; it never deletes what it did not write
            raise ValidationError(
                f"--dest {target.description} holds {other[0]}, which is not part of a "
                "snapcloud export; --mode overwrite only replaces an export",
                field="dest",
            )
    doomed = [k for k in held if k != SUCCESS and (mode == "overwrite" or _own(k, export_id))]
    if SUCCESS in held:
        target.delete(SUCCESS)
    for key in doomed:
        target.delete(key)
    report.deleted = doomed
