"""The data model: metric series, profile snapshots, configuration and queries.

``MetricSeries`` and ``ProfileSnapshot`` are slotted classes that validate once,
on construction, with vectorized numpy checks: they are built per metric on the
decode hot path, where a pydantic model costs ten times more (see
docs/architecture.md). Everything that crosses a JSON boundary (configuration,
queries, index entries) is a pydantic v2 model.

Raises :class:`snapcloud.errors.ValidationError` (a ``ValueError``) naming the
field for any invalid input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Literal, TypeVar, cast

import crc32c
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from snapcloud.errors import ValidationError

_T = TypeVar("_T")

__all__ = [
    "HOST_MAX_LEN",
    "NAME_MAX_LEN",
    "MetricColumns",
    "MetricKind",
    "MetricSeries",
    "ProfileSnapshot",
    "SnapshotConfig",
    "SnapshotQuery",
    "validate_host",
    "validate_metric_name",
]

MetricKind = Literal["gauge", "counter"]
METRIC_KINDS: tuple[str, ...] = ("gauge", "counter")

HOST_MAX_LEN = 128
NAME_MAX_LEN = 200
UNIT_MAX_LEN = 32
LABEL_VALUE_MAX_LEN = 1024
FINGERPRINT_MAX_LEN = 256

_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Host ids the layout keeps for itself: a host's writer lease is
#: ``marks/leases/<host>.json``, and ``marks/leases/compactor.json`` is the compactor's.
RESERVED_HOSTS = frozenset({"compactor"})
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:%-]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _check_name(value: object, field: str, pattern: re.Pattern[str], max_len: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}: expected a string, got {type(value).__name__}", field=field
        )
    if not value:
        raise ValidationError(f"{field}: must not be empty", field=field)
    if len(value) > max_len:
        raise ValidationError(
            f"{field}: {len(value)} characters, over the limit of {max_len}", field=field
        )
    if _CONTROL_RE.search(value):
        raise ValidationError(f"{field}: {value!r} contains a control character", field=field)
    if "/" in value or ".." in value:
        raise ValidationError(f"{field}: {value!r} must not contain '/' or '..'", field=field)
    if not pattern.fullmatch(value):
        raise ValidationError(
            f"{field}: {value!r} has characters outside [A-Za-z0-9_.:%-] "
            "or does not start with a letter or digit",
            field=field,
        )
    return value


def validate_host(host: object, field: str = "host") -> str:
    """Return ``host`` if it is a valid host id (letters, digits, ``._-``, at most 128,
    not one of ``RESERVED_HOSTS``)."""
    name = _check_name(host, field, _HOST_RE, HOST_MAX_LEN)
    if name in RESERVED_HOSTS:
        raise ValidationError(
            f"{field}: {name!r} is reserved (the compactor's lease has that name)", field=field
        )
    return name


def validate_metric_name(name: object, field: str = "name") -> str:
    """Return ``name`` if it is a valid metric or label name."""
    return _check_name(name, field, _NAME_RE, NAME_MAX_LEN)


def _check_text(value: object, field: str, max_len: int, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}: expected a string, got {type(value).__name__}", field=field
        )
    if not value and not allow_empty:
        raise ValidationError(f"{field}: must not be empty", field=field)
    if len(value) > max_len:
        raise ValidationError(
            f"{field}: {len(value)} characters, over the limit of {max_len}", field=field
        )
    if _CONTROL_RE.search(value):
        raise ValidationError(f"{field}: {value!r} contains a control character", field=field)
    return value


def _as_timestamps(raw: object, field: str) -> I64:
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise ValidationError(f"{field}: expected a 1-D array, got {arr.ndim}-D", field=field)
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValidationError(f"{field}: value over the int64 range", field=field)
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValidationError(f"{field}: non-finite timestamp", field=field)
        if np.any(arr != np.trunc(arr)) or np.any(np.abs(arr) >= 2.0**63):
            raise ValidationError(f"{field}: timestamps must be integer nanoseconds", field=field)
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    raise ValidationError(f"{field}: expected integer nanoseconds, got {arr.dtype}", field=field)


def _as_values(raw: object, field: str) -> F64:
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise ValidationError(f"{field}: expected a 1-D array, got {arr.ndim}-D", field=field)
    if arr.size == 0:
        return np.zeros(0, dtype=np.float64)
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise ValidationError(f"{field}: expected numbers, got {arr.dtype}", field=field)
    return np.ascontiguousarray(arr, dtype=np.float64)


class MetricSeries:
    """One named metric: int64 ns timestamps (non-decreasing) and float64 values.

    Values are kept bit for bit (NaN payloads, +-inf and -0.0 included).
    Raises ``ValidationError`` naming the field on bad input.
    """

    __slots__ = ("kind", "name", "timestamps", "unit", "values")

    name: str
    kind: MetricKind
    unit: str
    timestamps: I64
    values: F64

    def __init__(
        self,
        name: str,
        timestamps: object,
        values: object,
        *,
        kind: str = "gauge",
        unit: str = "",
    ) -> None:
        self.name = validate_metric_name(name, "name")
        if kind not in METRIC_KINDS:
            raise ValidationError(
                f"kind: {kind!r} for metric {name!r}; expected gauge or counter", field="kind"
            )
        self.kind = kind  # type: ignore[assignment]
        self.unit = _check_text(unit, "unit", UNIT_MAX_LEN)
        ts = _as_timestamps(timestamps, f"timestamps of {name!r}")
        vals = _as_values(values, f"values of {name!r}")
        if ts.shape != vals.shape:
            raise ValidationError(
                f"metric {name!r}: {ts.size} timestamps but {vals.size} values",
                field="values",
                metric=name,
            )
        if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
            bad = int(np.argmax(ts[1:] < ts[:-1])) + 1
            raise ValidationError(
                f"timestamps of {name!r}: out of order at position {bad}",
                field="timestamps",
                metric=name,
                position=bad,
            )
        ts.flags.writeable = False
        vals.flags.writeable = False
        self.timestamps = ts
        self.values = vals

    @classmethod
    def trusted(cls, name: str, kind: str, unit: str, timestamps: I64, values: F64) -> MetricSeries:
        """Build without validation: for the decoder, whose input is checksum-verified."""
        self = object.__new__(cls)
        self.name = name
        self.kind = kind  # type: ignore[assignment]
        self.unit = unit
        self.timestamps = timestamps
        self.values = values
        return self

    @classmethod
    def trusted_many(
        cls,
        names: Sequence[str],
        kinds: Iterable[str],
        units: Iterable[str],
        timestamps: Iterable[I64],
        values: Iterable[F64],
    ) -> list[MetricSeries]:
        """:meth:`trusted` for a whole metric table, column by column.

        The decoder builds a hundred metrics per snapshot; one loop here costs
        a third less than a call of :meth:`trusted` per metric.
        """
        out: list[MetricSeries] = list(map(object.__new__, repeat(cls, len(names))))
        for m, name, kind, unit, ts, vals in zip(
            out, names, kinds, units, timestamps, values, strict=True
        ):
            m.name = name
            m.kind = kind
            m.unit = unit
            m.timestamps = ts
            m.values = vals
        return out

    def __len__(self) -> int:
        return int(self.timestamps.size)

    def __repr__(self) -> str:
        return (
            f"MetricSeries(name={self.name!r}, kind={self.kind!r}, unit={self.unit!r}, "
            f"n={len(self)})"
        )

    def __eq__(self, other: object) -> bool:
        """Bit-exact equality: NaN payloads and -0.0 count."""
        if not isinstance(other, MetricSeries):
            return NotImplemented
        return (
            self.name == other.name
            and self.kind == other.kind
            and self.unit == other.unit
            and np.array_equal(self.timestamps, other.timestamps)
            and self.values.tobytes() == other.values.tobytes()
        )

    __hash__ = None  # type: ignore[assignment]

    def slice_time(self, start_ns: int | None, end_ns: int | None) -> MetricSeries:
        """The samples with ``start_ns <= t < end_ns`` (either bound may be open)."""
        lo, hi = _time_span(self.timestamps, start_ns, end_ns)
        if lo == 0 and hi == len(self):
            return self
        return MetricSeries.trusted(
            self.name, self.kind, self.unit, self.timestamps[lo:hi], self.values[lo:hi]
        )


def _time_span(ts: I64, start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    """The positions ``lo, hi`` of sorted ``ts`` with ``start_ns <= t < end_ns`` (either
    bound may be open)."""
    lo = 0 if start_ns is None else int(np.searchsorted(ts, start_ns, "left"))
    hi = ts.size if end_ns is None else int(np.searchsorted(ts, end_ns, "left"))
    return lo, hi


class MetricColumns:
    """A snapshot's metrics as columns: one shared timestamp array and every metric's
    values as a row of one read-only matrix (``values[i]`` belongs to ``names[i]``).

    The decoder holds a snapshot this way: building a ``MetricSeries`` per metric
    costs more than decoding its samples, so :attr:`ProfileSnapshot.metrics` builds
    them only when asked, and readers that can take columns (aggregation, the
    content checksum) never do. Not validated: only code that has checked its
    input (the decoder, after the frame checksum) builds one.
    """

    __slots__ = ("kinds", "names", "timestamps", "units", "values")

    def __init__(
        self, names: list[str], kinds: list[str], units: list[str], timestamps: I64, values: F64
    ) -> None:
        self.names = names
        self.kinds = kinds
        self.units = units
        self.timestamps = timestamps
        self.values = values

    @property
    def shape(self) -> tuple[int, int]:
        """(metrics, samples per metric)."""
        return int(self.values.shape[0]), int(self.values.shape[1])

    def metric_series(self) -> tuple[MetricSeries, ...]:
        """One ``MetricSeries`` per row, sharing this object's arrays."""
        count = len(self.names)
        return tuple(
            MetricSeries.trusted_many(
                self.names,
                self.kinds,
                self.units,
                repeat(self.timestamps, count),
                list(self.values),
            )
        )

    def take(self, rows: Sequence[int]) -> MetricColumns:
        """The metrics at positions ``rows``, in that order (values copied)."""
        picked = self.values[np.asarray(rows, dtype=np.intp)]
        picked.flags.writeable = False
        return MetricColumns(
            [self.names[i] for i in rows],
            [self.kinds[i] for i in rows],
            [self.units[i] for i in rows],
            self.timestamps,
            picked,
        )

    def slice_time(self, start_ns: int | None, end_ns: int | None) -> MetricColumns:
        """The samples with ``start_ns <= t < end_ns`` of every metric (views, not copies)."""
        ts = self.timestamps
        lo, hi = _time_span(ts, start_ns, end_ns)
        if lo == 0 and hi == ts.size:
            return self
        return MetricColumns(self.names, self.kinds, self.units, ts[lo:hi], self.values[:, lo:hi])


MetaValue = str | int | float | bool | None


def _check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        validate_metric_name(key, "labels")
        out[key] = _check_text(value, f"labels[{key!r}]", LABEL_VALUE_MAX_LEN)
    return dict(sorted(out.items()))


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, MetaValue]:
    out: dict[str, MetaValue] = {}
    for key, value in (metadata or {}).items():
        validate_metric_name(key, "metadata")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"metadata[{key!r}]: non-finite float", field="metadata")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValidationError(
                f"metadata[{key!r}]: expected a JSON scalar, got {type(value).__name__}",
                field="metadata",
            )
        if isinstance(value, str):
            _check_text(value, f"metadata[{key!r}]", LABEL_VALUE_MAX_LEN)
        out[key] = value
    return dict(sorted(out.items()))


class ProfileSnapshot:
    """One window of one host stream: metrics plus the facts needed to find it.

    ``seq`` is assigned by the store on append; ``checksum`` (CRC32C over the
    canonical content, timestamps and value bits included) is computed on demand.
    A decoded snapshot holds its metrics as :class:`MetricColumns` (``columns``)
    and builds the ``MetricSeries`` of ``metrics`` on first use.
    Raises ``ValidationError`` naming the field on bad input.
    """

    __slots__ = (
        "_checksum",
        "_coding",
        "_columns",
        "_metrics",
        "fingerprint",
        "host",
        "labels",
        "metadata",
        "seq",
        "window_end",
        "window_start",
    )

    host: str
    seq: int
    window_start: int
    window_end: int
    fingerprint: str
    labels: dict[str, str]
    metadata: dict[str, MetaValue]

    def __init__(
        self,
        host: str,
        metrics: Iterable[MetricSeries],
        *,
        seq: int = 0,
        window_start: int | None = None,
        window_end: int | None = None,
        fingerprint: str = "",
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.host = validate_host(host)
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 10**12:
            raise ValidationError(f"seq: {seq!r} is not an integer in [0, 1e12)", field="seq")
        self.seq = seq
        ms = tuple(metrics)
        for m in ms:
            if not isinstance(m, MetricSeries):
                raise ValidationError(
                    f"metrics: expected MetricSeries, got {type(m).__name__}", field="metrics"
                )
        names = [m.name for m in ms]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValidationError(f"metrics: metric {dup!r} appears twice", field="metrics")
        self._metrics: tuple[MetricSeries, ...] | None = ms
        self._columns: MetricColumns | None = None
        lo, hi = _time_bounds(ms)
        start = lo if window_start is None else window_start
        end = (hi + 1 if hi is not None else None) if window_end is None else window_end
        if start is None or end is None:
            raise ValidationError(
                "window_start/window_end: required when the snapshot has no samples",
                field="window_start",
            )
        for field, v in (("window_start", start), ("window_end", end)):
            if not isinstance(v, int | np.integer) or isinstance(v, bool):
                raise ValidationError(f"{field}: expected integer ns, got {v!r}", field=field)
        if end < start:
            raise ValidationError("window_end: before window_start", field="window_end")
        self.window_start = int(start)
        self.window_end = int(end)
        self.fingerprint = _check_text(fingerprint, "fingerprint", FINGERPRINT_MAX_LEN)
        self.labels = _check_labels(labels)
        self.metadata = _check_metadata(metadata)
        self._checksum: int | None = None
        self._coding: object | None = None

    @classmethod
    def trusted(
        cls,
        *,
        host: str,
        seq: int,
        window_start: int,
        window_end: int,
        fingerprint: str,
        labels: dict[str, str],
        metadata: dict[str, MetaValue],
        metrics: tuple[MetricSeries, ...] | None = None,
        columns: MetricColumns | None = None,
        coding: object | None = None,
    ) -> ProfileSnapshot:
        """Build without validation: for the decoder, whose input is checksum-verified.
        Give the metrics as ``metrics`` or as ``columns``, not both; ``coding``: what
        :meth:`coding` is to return (the decoder's, for a partially decoded keyframe)."""
        if (metrics is None) == (columns is None):
            raise TypeError("give metrics or columns")
        self = object.__new__(cls)
        self.host = host
        self.seq = seq
        self.window_start = window_start
        self.window_end = window_end
        self.fingerprint = fingerprint
        self.labels = labels
        self.metadata = metadata
        self._metrics = metrics
        self._columns = columns
        self._checksum = None
        self._coding = coding
        return self

    def coding(self, build: Callable[[ProfileSnapshot], _T]) -> _T:
        """What coding other snapshots against this one (as their keyframe) needs: the
        codec's, built by ``build`` on first use and kept, as a snapshot does not change."""
        made = self._coding
        if made is None:
            made = self._coding = build(self)
        return cast("_T", made)  # only the codec sets it, with one type

    @property
    def metrics(self) -> tuple[MetricSeries, ...]:
        """The metrics, in order (built from ``columns`` on first use)."""
        ms = self._metrics
        if ms is None:
            assert self._columns is not None
            ms = self._metrics = self._columns.metric_series()
        return ms

    @property
    def columns(self) -> MetricColumns | None:
        """The metrics as columns when the snapshot was built that way (decoded), else None."""
        return self._columns

    @property
    def metric_names(self) -> list[str]:
        """The metric names, in order, without building metric objects."""
        if self._columns is not None:
            return self._columns.names
        return [m.name for m in self.metrics]

    def with_seq(self, seq: int) -> ProfileSnapshot:
        """A copy of this snapshot with another sequence number."""
        out = self._with(self._metrics, None if self._metrics is not None else self._columns, seq)
        out._columns = self._columns
        return out

    def with_metrics(self, metrics: Sequence[MetricSeries]) -> ProfileSnapshot:
        """A copy of this snapshot holding only ``metrics``."""
        return self._with(tuple(metrics), None, self.seq)

    def with_columns(self, columns: MetricColumns) -> ProfileSnapshot:
        """A copy of this snapshot holding the metrics of ``columns``."""
        return self._with(None, columns, self.seq)

    def _with(
        self, metrics: tuple[MetricSeries, ...] | None, columns: MetricColumns | None, seq: int
    ) -> ProfileSnapshot:
        return ProfileSnapshot.trusted(
            host=self.host,
            seq=seq,
            window_start=self.window_start,
            window_end=self.window_end,
            fingerprint=self.fingerprint,
            labels=self.labels,
            metadata=self.metadata,
            metrics=metrics,
            columns=columns,
        )

    @property
    def sample_count(self) -> int:
        if self._columns is not None:
            return int(self._columns.values.size)
        return sum(len(m) for m in self.metrics)

    @property
    def raw_bytes(self) -> int:
        """The size a naive store would use: 16 bytes per sample (timestamp + value)."""
        return 16 * self.sample_count

    def metric(self, name: str) -> MetricSeries:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def header_dict(self) -> dict[str, Any]:
        """Everything but the sample arrays, in canonical (sorted, JSON-able) form."""
        return {
            "host": self.host,
            "seq": self.seq,
            "window": [self.window_start, self.window_end],
            "fingerprint": self.fingerprint,
            "labels": self.labels,
            "metadata": self.metadata,
            "metrics": [list(row) for row in zip(*self._table(), strict=True)],
        }

    def _table(self) -> tuple[list[str], list[str], list[str], list[int]]:
        """Names, kinds, units and lengths of the metrics (without building them)."""
        cols = self._columns
        if cols is not None:
            count, n = cols.shape
            return cols.names, cols.kinds, cols.units, [n] * count
        ms = self.metrics
        return [m.name for m in ms], [m.kind for m in ms], [m.unit for m in ms], list(map(len, ms))

    @property
    def checksum(self) -> int:
        """CRC32C over the canonical header JSON, then every timestamp and value bit."""
        if self._checksum is None:
            self._checksum = content_checksum(self)
        return self._checksum

    def __eq__(self, other: object) -> bool:
        """Bit-exact equality of everything the snapshot holds."""
        if not isinstance(other, ProfileSnapshot):
            return NotImplemented
        return self.header_dict() == other.header_dict() and all(
            a == b for a, b in zip(self.metrics, other.metrics, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ProfileSnapshot(host={self.host!r}, seq={self.seq}, "
            f"window=[{self.window_start}, {self.window_end}), "
            f"fingerprint={self.fingerprint!r}, metrics={len(self.metric_names)}, "
            f"samples={self.sample_count})"
        )


def _time_bounds(metrics: Sequence[MetricSeries]) -> tuple[int | None, int | None]:
    firsts = [int(m.timestamps[0]) for m in metrics if len(m)]
    lasts = [int(m.timestamps[-1]) for m in metrics if len(m)]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def canonical_json(obj: Any) -> bytes:
    """The one JSON spelling used wherever bytes are checksummed or compared."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def metric_table(
    names: Iterable[str], kinds: Iterable[str], units: Iterable[str], lengths: Iterable[int]
) -> bytes:
    """The metric lines of :func:`content_checksum`: ``name<TAB>kind<TAB>unit<TAB>length``
    per metric, joined by newlines (names and units cannot hold control characters,
    so this is unambiguous)."""
    columns = [list(names), list(kinds), list(units), list(map(str, lengths))]
    try:
        return "\n".join(map("\t".join, zip(*columns, strict=True))).encode()
    except TypeError:  # a name or unit that is no string: only in a hostile decoded table
        return "\n".join(
            [f"{n}\t{k}\t{u}\t{size}" for n, k, u, size in zip(*columns, strict=True)]
        ).encode()


def checksum_head_prefix(
    host: str, fingerprint: str, labels: dict[str, str], metadata: dict[str, MetaValue]
) -> bytes:
    """The canonical header JSON of :func:`content_checksum` up to its last two keys,
    seq and window: the part that every snapshot of one host and fingerprint shares.
    :func:`checksum_head` completes it."""
    head = {"host": host, "fingerprint": fingerprint, "labels": labels, "metadata": metadata}
    return canonical_json(head)[:-1] + b","


def checksum_head(prefix: bytes, seq: int, window_start: int, window_end: int) -> bytes:
    """The canonical header JSON of :func:`content_checksum`, from its
    :func:`checksum_head_prefix`: keys sort as fingerprint, host, labels, metadata,
    seq, window, and JSON spells an int as ``%d`` does."""
    return b'%s"seq":%d,"window":[%d,%d]}' % (prefix, seq, window_start, window_end)


def content_checksum(
    snapshot: ProfileSnapshot,
    *,
    head: bytes | None = None,
    table: bytes | None = None,
    timestamps: I64 | None = None,
    values: F64 | None = None,
) -> int:
    """CRC32C over the snapshot's canonical content, independent of how it is encoded.

    In order: canonical JSON of host, seq, window, fingerprint, labels and metadata;
    the :func:`metric_table` lines; every timestamp (int64 LE, metrics in order);
    every value's bits (float64 LE).

    A caller that holds some of these already passes them: ``head`` (the
    header JSON, see :func:`checksum_head`), ``table`` (the ``metric_table``
    bytes), ``timestamps`` and ``values`` (every metric's, concatenated in
    metric order). The decoder does: it keeps the header prefix and table of a
    keyframe's deltas, and rebuilds values as one matrix.
    """
    if head is None:
        head = canonical_json(
            {
                "host": snapshot.host,
                "seq": snapshot.seq,
                "window": [snapshot.window_start, snapshot.window_end],
                "fingerprint": snapshot.fingerprint,
                "labels": snapshot.labels,
                "metadata": snapshot.metadata,
            }
        )
    if table is None:
        table = metric_table(*snapshot._table())
    crc = crc32c.crc32c(head)
    crc = crc32c.crc32c(table, crc)
    cols = snapshot._columns
    if cols is not None:
        count = cols.shape[0]
        if count and timestamps is None:
            timestamps = np.tile(cols.timestamps, count)
        if count and values is None:
            values = cols.values
    else:
        ms = snapshot.metrics
        count = len(ms)
        if count and timestamps is None:
            timestamps = _all_timestamps(ms)
        if count and values is None:
            values = np.concatenate([m.values for m in ms])
    if count:
        assert timestamps is not None and values is not None
        crc = crc32c.crc32c(np.ascontiguousarray(timestamps, dtype="<i8").data, crc)
        crc = crc32c.crc32c(np.ascontiguousarray(values, dtype="<f8").data, crc)
    return crc


def _all_timestamps(ms: tuple[MetricSeries, ...]) -> I64:
    """Every metric's timestamps, concatenated; one ``tile`` when they share one array
    (a decoded snapshot's usual case), which costs a fraction of concatenating."""
    first = ms[0].timestamps
    if all(m.timestamps is first for m in ms):
        return np.tile(first, len(ms))
    return np.concatenate([m.timestamps for m in ms])


_DAY_NS = 86_400 * 10**9


class SnapshotConfig(BaseModel):
    """Settings of a store: keyframe cadence, integrity checks, limits, tier ages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keyframe_interval: int = Field(60, ge=1, le=100_000)
    verify_checksums: bool = True
    max_query_memory_bytes: int = Field(256 * 2**20, ge=1)
    max_decoded_bytes: int = Field(1 * 2**30, ge=1)
    zstd_level: int = Field(3, ge=-7, le=22)
    raw_max_age_ns: int = Field(1 * _DAY_NS, ge=0)
    compressed_max_age_ns: int = Field(30 * _DAY_NS, ge=0)
    archive_max_age_ns: int = Field(365 * _DAY_NS, ge=0)
    delete_delay_ns: int = Field(2 * 3600 * 10**9, ge=0)

    @model_validator(mode="after")
    def _ages_ordered(self) -> SnapshotConfig:
        if not self.raw_max_age_ns <= self.compressed_max_age_ns <= self.archive_max_age_ns:
            raise ValueError("tier ages must satisfy raw <= compressed <= archive")
        return self


class SnapshotQuery(BaseModel):
    """What to read from a host stream: ``start_ns <= t < end_ns``, fingerprint, metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_ns: int | None = None
    end_ns: int | None = None
    fingerprint: str | None = None
    metrics: tuple[str, ...] | None = None
    limit: int | None = Field(None, ge=1)

    def __init__(self, **data: Any) -> None:
        """Raises ``ValidationError`` naming the field (never pydantic's own error)."""
        try:
            super().__init__(**data)
        except PydanticError as exc:
            first = exc.errors()[0]
            inner = (first.get("ctx") or {}).get("error")
            if isinstance(inner, ValidationError):
                raise inner from None
            where = ".".join(str(p) for p in first["loc"]) or "query"
            raise ValidationError(f"{where}: {first['msg']}", field=where) from None

    @field_validator("start_ns", "end_ns", "limit", mode="before")
    @classmethod
    def _exact_int(cls, v: Any) -> Any:
        """A numpy integer (a timestamp taken from a series) as the exact int: pydantic
        would go through a float and round nanoseconds away."""
        return int(v) if isinstance(v, np.integer) else v

    @field_validator("metrics")
    @classmethod
    def _names(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            for name in v:
                validate_metric_name(name, "metrics")
        return v

    @model_validator(mode="after")
    def _range(self) -> SnapshotQuery:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns < self.start_ns:
            raise ValidationError(
                f"end_ns: {self.end_ns} is before start_ns {self.start_ns}", field="end_ns"
            )
        return self

    def overlaps(self, window_start: int, window_end: int) -> bool:
        """Whether a window ``[window_start, window_end)`` can hold a matching sample."""
        if self.start_ns is not None and window_end <= self.start_ns:
            return False
        return not (self.end_ns is not None and window_start >= self.end_ns)
