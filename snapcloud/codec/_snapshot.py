"""Snapshots to payload bytes and back: keyframes and deltas against a keyframe.

Payload (before zstd)::

    u32 LE meta length | meta JSON | sections...

The meta JSON holds the snapshot's facts and, per group, how its numbers were
transformed; the sections hold the numbers as byte planes (see ``_transforms``).
Every section's size follows from the meta, so the decoder checks each one and
that nothing is left over.

- Times: metrics sharing one timestamp array share one *time group*. A regular
  group is ``[t0, step, n]`` and costs no section bytes; an irregular one stores
  delta-of-delta codes. ``t0`` is relative to the window start. In a delta, a
  group equal to one of the base's groups up to a constant shift is
  ``["b", i, shift]`` (the shift relative to the window's own shift).
- Values: metrics of equal length form one matrix, described as ``[n, rows,
  int_rows, decimals, orders, widths, exceptions, raw_width, correction_widths]``.
  An integer row holds ``v * 10**d`` for the smallest ``d`` (0..9) that reads
  most values to within a few ulps, differenced 0-2 times, zigzagged, as byte
  planes grouped by width; a value a few ulps off its decimal reading
  (``51.846000000000004``) adds a correction to the decoded bits; NaN, -0.0 and
  other far values are exceptions (position + raw bits). A row where fewer than
  half the values fit is raw float bits XOR the previous value.
- In a delta, a metric whose values equal the base's bit for bit is ``same``;
  fingerprint, labels, metadata and metric table equal to the base's are left
  out; seq and window are given relative to the base.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Collection
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import pydantic_core

from snapcloud.codec import _transforms as tf
from snapcloud.codec import _zstd
from snapcloud.codec._format import (
    KIND_DELTA,
    KIND_KEYFRAME,
    FrameHeader,
    pack_frame,
    unpack_frame,
)
from snapcloud.errors import (
    ChecksumMismatch,
    CorruptError,
    OversizedObject,
    ValidationError,
    WrongBase,
)
from snapcloud.models import (
    MetricColumns,
    MetricSeries,
    ProfileSnapshot,
    checksum_head,
    checksum_head_prefix,
    content_checksum,
    metric_table,
)

__all__ = [
    "DEFAULT_MAX_DECODED",
    "Decoded",
    "decode",
    "decode_object",
    "encode_delta",
    "encode_keyframe",
    "read_header",
]

DEFAULT_MAX_DECODED = 1 << 30
_KIND_CODE = {"gauge": "g", "counter": "c"}
_KIND_NAME = {"g": "gauge", "c": "counter"}
_GET_NAME, _GET_KIND, _GET_UNIT, _GET_VALUES, _GET_TIMES = (
    attrgetter(a) for a in ("name", "kind", "unit", "values", "timestamps")
)
# The meta's keys (short: every object stores them). A keyframe's identity:
_HOST, _SEQ, _WINDOW = "h", "s", "w"
# A delta's, relative to its base: seq - base seq, window - predicted window.
_SEQ_STEP, _WINDOW_MISS = "ds", "dw"
# The facts (a delta leaves out those equal to its base's):
_FINGERPRINT, _LABELS, _METADATA, _TABLE = "f", "l", "m", "t"
# The numbers: time groups, each metric's time group, value groups, unchanged metrics.
_TIME_GROUPS, _METRIC_TIMES, _VALUE_GROUPS, _SAME = "tg", "mt", "vg", "same"
_FACT_KEYS = (_FINGERPRINT, _LABELS, _METADATA, _TABLE)
_COMMON_KEYS = {*_FACT_KEYS, _TIME_GROUPS, _METRIC_TIMES, _VALUE_GROUPS}
_KEYFRAME_KEYS = _COMMON_KEYS | {_HOST, _SEQ, _WINDOW}
_BASE_HEAD = frozenset({_FINGERPRINT, _LABELS, _METADATA})  # a delta without these has its base's
_DELTA_KEYS = _COMMON_KEYS | {_SEQ_STEP, _WINDOW_MISS, _SAME}
_NO_ROWS: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
_NO_ROWS.flags.writeable = False
_NO_CODES: tf.I64 = np.zeros(0, dtype=np.int64)
_NO_CODES.flags.writeable = False
#: The meta's JSON spelling (one encoder: ``json.dumps`` with options builds one a call).
_META_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- encode


def encode_keyframe(snapshot: ProfileSnapshot, *, level: int = 3) -> bytes:
    """Encode a snapshot as a self-contained keyframe object."""
    return _encode(snapshot, None, level)


def encode_delta(snapshot: ProfileSnapshot, base: ProfileSnapshot, *, level: int = 3) -> bytes:
    """Encode a snapshot as a delta against ``base`` (its group's keyframe).

    Raises ``ValidationError`` when ``base`` belongs to another host.
    """
    if base.host != snapshot.host:
        raise ValidationError(
            f"delta base belongs to host {base.host!r}, snapshot to {snapshot.host!r}",
            field="base",
        )
    return _encode(snapshot, base, level)


def _encode(
    snap: ProfileSnapshot,
    base: ProfileSnapshot | None,
    level: int,
    *,
    dictionary: int = _zstd.CURRENT_DICTIONARY,
) -> bytes:
    info = _info(base)
    if info is not None and info.partial:
        raise ValidationError("cannot encode against a partially decoded keyframe", field="base")
    meta: dict[str, Any] = {}
    if base is None:
        meta[_HOST], meta[_SEQ] = snap.host, snap.seq
        meta[_WINDOW] = [snap.window_start, snap.window_end]
    else:  # a delta says only how it differs from its base
        meta[_SEQ_STEP] = snap.seq - base.seq
        pred = _predicted_window((base.window_start, base.window_end), meta[_SEQ_STEP])
        miss = [snap.window_start - pred[0], snap.window_end - pred[1]]
        if miss != [0, 0]:
            meta[_WINDOW_MISS] = miss
    facts = _facts(snap)
    for key, value in facts.items():
        if info is None or info.facts[key] != value:
            meta[key] = value
    sections: list[bytes] = []
    shift = snap.window_start - base.window_start if base is not None else 0
    meta[_TIME_GROUPS], mt = _encode_times(snap, info, shift, sections)
    if mt is not None:
        meta[_METRIC_TIMES] = mt
    meta[_VALUE_GROUPS], same = _encode_values(snap.metrics, facts[_TABLE][0], info, sections)
    if same:
        identity = len(same) == len(snap.metrics) and all(i == j for i, j in same)
        meta[_SAME] = "*" if identity else same
    meta_bytes = _META_JSON.encode(meta).encode()
    payload = b"".join([struct.pack("<I", len(meta_bytes)), meta_bytes, *sections])
    header = FrameHeader(
        kind=KIND_DELTA if base is not None else KIND_KEYFRAME,
        seq=snap.seq,
        base_seq=base.seq if base is not None else snap.seq,
        base_checksum=base.checksum if base is not None else 0,
        content_checksum=snap.checksum,
        decoded_size=len(payload),
        payload_size=0,
        dictionary=dictionary,
    )
    return pack_frame(header, _zstd.compress(payload, level, dictionary))


def _predicted_window(window: tuple[int, int], ds: int) -> tuple[int, int]:
    """Where a stream of back-to-back windows puts snapshot ``base.seq + ds``."""
    length = window[1] - window[0]
    return window[0] + ds * length, window[1] + ds * length


def _facts(snap: ProfileSnapshot) -> dict[str, Any]:
    cols = snap.columns
    if cols is not None:
        names, kind_list, units = list(cols.names), cols.kinds, list(cols.units)
    else:
        ms = snap.metrics
        names, kind_list, units = (
            list(map(_GET_NAME, ms)),
            list(map(_GET_KIND, ms)),
            list(map(_GET_UNIT, ms)),
        )
    kinds = "".join(map(_KIND_CODE.__getitem__, kind_list))
    return {
        _FINGERPRINT: snap.fingerprint,
        _LABELS: snap.labels,
        _METADATA: snap.metadata,
        _TABLE: [names, kinds, units],
    }


class _BaseInfo:
    """What coding against a keyframe needs, computed once per keyframe and cached on it."""

    partial = False

    def __init__(self, base: ProfileSnapshot) -> None:
        self.facts = _facts(base)
        self.index = {name: j for j, name in enumerate(self.facts[_TABLE][0])}
        cols = base.columns
        if cols is None:
            self.time_groups = _unique_times(base.metrics)[0]
        else:  # one time group, unless there is no metric
            self.time_groups = [cols.timestamps] if cols.names else []
        self.host, self.seq = base.host, base.seq
        self.window = (base.window_start, base.window_end)
        self.checksum = base.checksum
        self._matrices: dict[int, tuple[tf.I64, npt.NDArray[np.intp]]] = {}
        self._tables: dict[int, bytes] = {}
        self._base = base

    def kind_names(self) -> list[str]:
        """The metric kinds of the base's table, spelled out (computed once)."""
        cached: list[str] | None = getattr(self, "_kind_names", None)
        if cached is None:
            cached = self._kind_names = _kind_names(self.facts[_TABLE][1])
        return cached

    def head_prefix(self) -> bytes:
        """The content checksum's header JSON up to seq, for a delta that keeps the
        base's host, fingerprint, labels and metadata (computed once)."""
        cached: bytes | None = getattr(self, "_head_prefix", None)
        if cached is None:
            fingerprint, labels, metadata = (
                self.facts[k] for k in (_FINGERPRINT, _LABELS, _METADATA)
            )
            cached = self._head_prefix = checksum_head_prefix(
                self.host, fingerprint, labels, metadata
            )
        return cached

    def checksum_table(self, n: int) -> bytes:
        """The content checksum's metric lines for the base's table with every metric
        ``n`` long: what a delta that keeps the table and one time group needs."""
        if n not in self._tables:
            names, _, units = self.facts[_TABLE]
            self._tables[n] = metric_table(names, self.kind_names(), units, repeat(n, len(names)))
        return self._tables[n]

    def values(self, j: int) -> tf.F64:
        """The values of the base's metric ``j`` (in its metric table)."""
        cols = self._base.columns
        if cols is not None:
            row: tf.F64 = cols.values[_index(j, len(cols.names))]
            return row
        return self._base.metrics[_index(j, len(self._base.metrics))].values

    def matrix(self, n: int) -> tuple[tf.I64, npt.NDArray[np.intp]]:
        """The value bits of every base metric of length ``n`` as rows, and for each
        base metric its row there (-1: of another length)."""
        cols = self._base.columns
        if n not in self._matrices and cols is not None:
            count = len(cols.names)
            if cols.values.shape[1] == n:
                self._matrices[n] = (cols.values.view(np.int64), np.arange(count, dtype=np.intp))
            else:
                self._matrices[n] = (
                    np.zeros((0, n), dtype=np.int64),
                    np.full(count, -1, dtype=np.intp),
                )
        if n not in self._matrices:
            ms = self._base.metrics
            js = [j for j, m in enumerate(ms) if m.values.size == n]
            mat = _stack([ms[j].values for j in js], n).view(np.int64)
            row_of = np.full(len(ms), -1, dtype=np.intp)
            row_of[js] = np.arange(len(js))
            self._matrices[n] = (mat, row_of)
        return self._matrices[n]


class _PartialBase(_BaseInfo):
    """A keyframe decoded for some of its metrics only: its full facts and time groups
    (from its meta), its identity (seq, content checksum from the verified frame), and
    the values that were decoded. Deltas decoded for the same metrics can use it."""

    partial = True

    def __init__(
        self,
        facts: dict[str, Any],
        time_groups: list[tf.I64],
        host: str,
        seq: int,
        window: tuple[int, int],
        checksum: int,
        values: dict[int, tf.F64],
    ) -> None:
        self.facts = facts
        self.index = {name: j for j, name in enumerate(facts[_TABLE][0])}
        self.time_groups = time_groups
        self.host, self.seq, self.window, self.checksum = host, seq, window, checksum
        self._values = values

    def values(self, j: int) -> tf.F64:
        got = self._values.get(j)
        if got is None:
            raise ValidationError(
                f"the delta needs metric {j} of base {self.seq}, which was decoded without it; "
                "decode the base for the same metrics",
                field="metrics",
            )
        return got

    def matrix(self, n: int) -> tuple[tf.I64, npt.NDArray[np.intp]]:  # pragma: no cover - guarded
        raise ValidationError("cannot encode against a partially decoded keyframe", field="base")


def _needed(
    names: list[str], wanted: frozenset[str], info: _BaseInfo | None
) -> npt.NDArray[np.bool_] | None:
    """Which metrics of the table ``names`` are wanted; ``None`` when all are (a full
    decode). Cached on the base when the table is the base's (a delta's usual case)."""
    cache: dict[frozenset[str], npt.NDArray[np.bool_] | None] | None = None
    if info is not None:
        cache = info.__dict__.setdefault("_needed", {})
        if wanted in cache:
            return cache[wanted]
    need: npt.NDArray[np.bool_] | None = np.fromiter(
        (nm in wanted for nm in names), dtype=np.bool_, count=len(names)
    )
    if need is not None and need.all():
        need = None  # every metric wanted: a full decode, checked in full
    if cache is not None:
        cache[wanted] = need
    return need


def _kind_names(kinds: Any) -> list[str]:
    if not isinstance(kinds, str):
        raise CorruptError("metric kinds are not a string")
    try:
        return [_KIND_NAME[k] for k in kinds]
    except KeyError as exc:
        raise CorruptError(f"unknown metric kind {exc.args[0]!r}") from None


def _info(base: ProfileSnapshot | None) -> _BaseInfo | None:
    if base is None:
        return None
    return base.coding(_BaseInfo)


def _stack(rows: list[npt.NDArray[Any]], n: int, dtype: type[Any] = np.float64) -> Any:
    """Rows of ``n`` values (of ``dtype``, 8 bytes) as one read-only matrix.

    ``bytes.join`` copies the rows' buffers three times faster than ``np.concatenate``
    (which checks every row's type and shape); np.stack is slower still. A row that
    is not a contiguous array of 8-byte values takes the slow way.
    """
    if not rows:
        return np.zeros((0, n), dtype=dtype)
    try:
        joined = b"".join(rows)  # type: ignore[arg-type]  # ndarrays are buffers
    except BufferError:  # not contiguous
        joined = b""
    if len(joined) == 8 * n * len(rows):
        return np.frombuffer(joined, dtype=dtype).reshape(len(rows), n)
    return np.concatenate(rows).astype(dtype, copy=False).reshape(len(rows), n)


def _unique_times(metrics: tuple[MetricSeries, ...]) -> tuple[list[tf.I64], list[int]]:
    """The distinct timestamp arrays, and for each metric the index of its array."""
    if metrics:  # the usual case: one array, shared or repeated, checked in two numpy calls
        stamps = list(map(_GET_TIMES, metrics))
        first = stamps[0]
        if len(stamps) == 1 or (
            set(map(len, stamps)) == {first.size}
            and bool((_stack(stamps, first.size, np.int64) == first).all())
        ):
            return [first], [0] * len(metrics)
    groups: dict[bytes, int] = {}
    arrays: list[tf.I64] = []
    of_metric: list[int] = []
    last: tf.I64 | None = None
    g = -1
    for m in metrics:
        ts = m.timestamps
        if ts is not last:
            raw = ts.tobytes()
            g = groups.get(raw, -1)
            if g < 0:
                g = groups[raw] = len(arrays)
                arrays.append(ts)
            last = ts
        of_metric.append(g)
    return arrays, of_metric


def _encode_times(
    snap: ProfileSnapshot, info: _BaseInfo | None, shift: int, sections: list[bytes]
) -> tuple[list[Any], list[int] | None]:
    arrays, of_metric = _unique_times(snap.metrics)
    base_groups = info.time_groups if info is not None else []
    start = snap.window_start
    described: list[Any] = []
    irregular: list[tf.U64] = []
    for ts in arrays:
        ref = _match_base_times(ts, base_groups)
        if ref is not None:
            described.append(["b", ref[0], ref[1] - shift])
        elif ts.size >= 2 and _is_regular(ts):
            described.append([int(ts[0]) - start, int(ts[1] - ts[0]), int(ts.size)])
        elif ts.size <= 1:
            described.append([int(ts[0]) - start if ts.size else 0, 0, int(ts.size)])
        else:
            irregular.append(tf.zigzag(np.diff(np.diff(ts), prepend=0)))
            described.append([int(ts[0]) - start, None, int(ts.size)])
    width = 0
    if irregular:
        stream = np.concatenate(irregular)
        width = tf.plane_width(stream)
        sections.append(tf.to_planes(stream, width))
    described.append(width)
    return described, (None if len(arrays) <= 1 else of_metric)


def _is_regular(ts: tf.I64) -> bool:
    """Whether ``ts`` (two or more) steps evenly (slices, not ``np.diff``: a small
    array spends most of its time in ``np.diff``'s argument handling)."""
    steps = ts[1:] - ts[:-1]
    return bool((steps == steps[0]).all())


def _match_base_times(ts: tf.I64, base_groups: list[tf.I64]) -> tuple[int, int] | None:
    for i, b in enumerate(base_groups):
        if b.size == ts.size and ts.size:
            gap = ts - b  # wrapping int64, like the shift it is compared with
            if bool((gap == gap[0]).all()):
                return i, int(gap[0])
    return None


def _encode_values(
    metrics: tuple[MetricSeries, ...],
    names: list[str],
    info: _BaseInfo | None,
    sections: list[bytes],
) -> tuple[list[list[Any]], list[list[int]]]:
    """Group metrics by length, drop rows equal to the base's, encode the rest as matrices."""
    values = list(map(_GET_VALUES, metrics))
    lengths = list(map(len, values))
    by_len: dict[int, list[int]] = {}
    if len(set(lengths)) == 1:
        by_len[lengths[0]] = list(range(len(values)))
    else:
        for k, size in enumerate(lengths):
            by_len.setdefault(size, []).append(k)
    groups: list[list[Any]] = []
    same: list[list[int]] = []
    # Each metric's index in the base's table (-1: none); None: the tables match.
    in_base: list[int] | None = None
    if info is not None and names != info.facts[_TABLE][0]:
        in_base = [info.index.get(name, -1) for name in names]
    for n, ks in by_len.items():
        matrix = _stack(values if len(ks) == len(values) else [values[k] for k in ks], n)
        rows = ks
        if info is not None:
            js = None if in_base is None else [in_base[k] for k in ks]
            keep = _unchanged_rows(matrix, js, info, n, ks, same)
            if keep is not None:
                if not keep.any():
                    continue
                matrix = matrix[keep]
                rows = [k for k, kept in zip(ks, keep.tolist(), strict=True) if kept]
        all_rows = len(rows) == len(metrics)  # then rows are 0..count-1 in order
        groups.append([n, None if all_rows else rows, *_encode_matrix(matrix, sections)])
    return groups, same


def _unchanged_rows(
    matrix: tf.F64,
    js: list[int] | None,
    info: _BaseInfo,
    n: int,
    ks: list[int],
    same: list[list[int]],
) -> tf.BoolArr | None:
    """Mark rows whose bits equal the base metric of the same name (``js``: its index in
    the base's table, or -1; ``None``: the rows are the base's metrics, in its order);
    record them in ``same``. Returns the rows to keep, ``None`` for all of them."""
    base_mat, row_of = info.matrix(n)
    if base_mat.shape[0] == 0:  # no base metric is n long (a keyframe of a part day)
        return None
    if js is None and len(ks) == base_mat.shape[0] == row_of.size:  # all n long, in order
        equal = (matrix.view(np.int64) == base_mat).all(axis=1)
        js = ks
    else:
        if js is None:
            js = ks
        known = np.array(js, dtype=np.intp)
        base_rows = np.where(known >= 0, row_of[known], -1) if row_of.size else known
        has = base_rows >= 0
        equal = np.zeros(len(ks), dtype=np.bool_)
        if has.any():
            equal[has] = np.all(matrix[has].view(np.int64) == base_mat[base_rows[has]], axis=1)
    if not equal.any():
        return None
    for r in equal.nonzero()[0].tolist():
        same.append([ks[r], js[r]])
    keep: tf.BoolArr = ~equal
    return keep


#: Width-class layouts up to this many blocks get their block index cached (16 bytes a
#: block); larger ones are copied a class at a time.
_CACHED_BLOCKS = 4096


@functools.lru_cache(maxsize=256)
def _class_blocks(counts: tuple[int, ...]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Where the ``n``-byte blocks of width classes 1..8 go: for each block, in stored
    order, its row among the rows sorted by width, and its byte plane.

    Class ``w`` holds its ``counts[w]`` rows as ``w`` planes one after another,
    and the classes follow each other. The answer depends on the class sizes
    only, which repeat from snapshot to snapshot, hence the cache.
    """
    ks = np.array(counts[1:9], dtype=np.intp)
    sizes = ks * np.arange(1, 9)  # blocks per class
    cls = np.repeat(np.arange(8), sizes)  # class (width - 1) of each block
    local = np.arange(int(sizes.sum())) - (np.cumsum(sizes) - sizes)[cls]
    first = counts[0] + np.cumsum(ks) - ks  # first sorted row of each class
    row, plane = first[cls] + local % ks[cls], local // ks[cls]
    row.flags.writeable = plane.flags.writeable = False
    return row, plane


def _width_classes(codes: tf.U64, sections: list[bytes]) -> list[int]:
    """Append the byte planes of the rows of widths 1..8 (class after class, each class
    plane by plane, its rows in row order: one section per width, read back by
    ``_read_width_classes``); return the widths.

    The planes are gathered by one fancy index (per class, for layouts too large to
    cache), where a byte-plane copy per class and plane would cost a call each.
    """
    widths = tf.row_widths(codes)
    out: list[int] = widths.tolist()
    total = sum(out)  # blocks: a row of width w is w of them
    rows, n = codes.shape
    if total and n:
        as_bytes = np.ascontiguousarray(codes, dtype="<u8").view(np.uint8).reshape(rows, n, 8)
        if rows == 1:  # (one metric) one class: the row's low bytes, plane by plane
            sections.append(as_bytes[0, :, :total].T.tobytes())
            return out
        counts = np.bincount(widths, minlength=9).tolist()
        by_width = widths.argsort(kind="stable")
        if total <= _CACHED_BLOCKS:
            sorted_row, plane = _class_blocks(tuple(counts))
            sections.append(as_bytes[by_width[sorted_row], :, plane].tobytes())
        else:
            first = counts[0]
            for w in range(1, 9):
                k = counts[w]
                if k:
                    block = as_bytes[by_width[first : first + k, None], :, np.arange(w)]
                    sections.append(block.transpose(1, 0, 2).tobytes())
                    first += k
    return out


def _encode_matrix(values: tf.F64, sections: list[bytes]) -> list[Any]:
    """``[int_rows, decimals, orders, widths, exceptions, raw_width, correction_widths]``.

    Usually every row is an integer row and every value near its decimal reading; the
    steps for raw rows and exceptions are skipped then (their sections would be empty).
    """
    n = values.shape[1]
    decimals, ints, corr, near, counts = tf.find_decimals(values)
    is_int = counts * 2 >= n
    raw_rows = (~is_int).nonzero()[0]
    int_rows: list[int] | None = None  # None: every row
    int_values = values
    if raw_rows.size:
        kept = is_int.nonzero()[0]
        int_rows = kept.tolist()
        int_values, decimals, ints = values[kept], decimals[kept], ints[kept]
        corr, near, counts = corr[kept], near[kept], counts[kept]
    gaps = (counts < n).nonzero()[0]  # rows with exceptions to fill over
    if gaps.size:
        ints[gaps] = tf.fill_forward(ints[gaps], near[gaps])
    if n > 1:
        orders, diffed = tf.difference_orders(ints)
    else:
        orders, diffed = np.zeros(ints.shape[0], dtype=np.int8), ints
    widths = _width_classes(tf.zigzag(diffed), sections)
    corr_widths: list[int] | int = 0
    if corr.any():
        corr_widths = _width_classes(tf.zigzag(corr), sections)
    exceptions = 0
    if gaps.size:  # the values far from their reading: positions, then raw bits
        bad = np.flatnonzero(~near)
        sections.append(bad.astype("<u4").tobytes())
        sections.append(int_values.ravel()[bad].astype("<f8").view("<u8").tobytes())
        exceptions = int(bad.size)
    xw = 0
    if raw_rows.size:
        xr = tf.xor_rows(values[raw_rows].view(np.uint64)).ravel()
        xw = tf.plane_width(xr)
        sections.append(tf.to_planes(xr, xw))
    return [
        int_rows,
        decimals.tolist(),
        orders.tolist(),
        widths,
        exceptions,
        xw,
        corr_widths,
    ]


# --------------------------------------------------------------------------- decode


def read_header(data: bytes, *, key: str | None = None) -> FrameHeader:
    """Check an object's frame (magic, version, sizes, frame checksum) and return its header."""
    return unpack_frame(data, key=key)[0]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What decoding one object gives: its snapshot and what the object says about it."""

    snapshot: ProfileSnapshot
    #: The content checksum the object was written with: of the whole snapshot, also when
    #: only some of its metrics were decoded (``snapshot.checksum`` is of what it holds).
    stored_checksum: int
    #: Whether only some of the snapshot's metrics were decoded (see ``metrics``).
    partial: bool
    #: The keyframe a delta was decoded against, as ``(seq, content checksum)``;
    #: ``None`` for a keyframe.
    delta_base: tuple[int, int] | None


def decode(
    data: bytes,
    *,
    base: ProfileSnapshot | None = None,
    max_decoded_size: int = DEFAULT_MAX_DECODED,
    verify: bool = True,
    key: str | None = None,
    metrics: Collection[str] | None = None,
) -> ProfileSnapshot:
    """Rebuild the snapshot an object holds, bit for bit: :func:`decode_object`'s
    snapshot, for readers that need nothing else the object says."""
    return decode_object(
        data, base=base, max_decoded_size=max_decoded_size, verify=verify, key=key, metrics=metrics
    ).snapshot


def decode_object(
    data: bytes,
    *,
    base: ProfileSnapshot | None = None,
    max_decoded_size: int = DEFAULT_MAX_DECODED,
    verify: bool = True,
    key: str | None = None,
    metrics: Collection[str] | None = None,
) -> Decoded:
    """Rebuild the snapshot an object holds, bit for bit, with what the object says of it.

    A delta needs ``base``, the keyframe it names. ``metrics`` decodes only the
    metrics of those names (the others are skipped, not rebuilt): the content
    checksum covers the whole snapshot, so a partial decode relies on the frame
    checksum, which covers every stored byte; the snapshot's own ``checksum`` is
    that of what it holds (``Decoded.stored_checksum`` is the object's).
    A keyframe decoded for some metrics serves as the base
    of deltas decoded for the same metrics. Raises ``UnknownFormat``,
    ``TruncatedObject``, ``OversizedObject`` (declared size over
    ``max_decoded_size``, checked before decompressing), ``WrongBase``,
    ``ChecksumMismatch`` or ``CorruptError`` for a malformed payload.
    """
    header, payload = unpack_frame(data, key=key)
    info = _base_info(header, base, key)
    raw = _decompress(header, payload, max_decoded_size, key)
    wanted = None if metrics is None else frozenset(metrics)
    snap, partial = _decode_payload_at(key, raw, info, max_decoded_size, wanted, header, verify)
    if snap.seq != header.seq:
        raise CorruptError(f"payload seq {snap.seq} != header seq {header.seq} at {key}", key=key)
    if not partial:  # a partial snapshot's own checksum is computed when asked for
        _check_content(snap, header.content_checksum, verify, key)
    delta_base = (header.base_seq, header.base_checksum) if header.is_delta else None
    return Decoded(snap, header.content_checksum, partial, delta_base)


def _base_info(
    header: FrameHeader, base: ProfileSnapshot | None, key: str | None
) -> _BaseInfo | None:
    """The coding state of the keyframe a delta names (``None`` for a keyframe).
    Raises ``WrongBase`` when ``base`` is not that keyframe."""
    if not header.is_delta:
        return None
    info = _info(base)
    if info is None or info.seq != header.base_seq or info.checksum != header.base_checksum:
        got = "none" if info is None else f"seq {info.seq} checksum {info.checksum:08x}"
        raise WrongBase(
            f"delta {header.seq} needs base seq {header.base_seq} checksum "
            f"{header.base_checksum:08x}, got {got} at {key}",
            key=key,
            seq=header.seq,
        )
    return info


def _decompress(header: FrameHeader, payload: memoryview, limit: int, key: str | None) -> bytes:
    """The payload, decompressed; ``OversizedObject`` first when its declared size is
    over ``limit``."""
    if header.decoded_size > limit:
        raise OversizedObject(
            f"declared decoded size {header.decoded_size} is over the limit {limit} at {key}",
            key=key,
        )
    return _zstd.decompress(
        payload, header.decoded_size, version=header.version, number=header.dictionary, key=key
    )


#: What reading a malformed payload can raise besides ``CorruptError``.
_MALFORMED = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,  # a meta nested thousands deep
    OverflowError,  # a JSON integer past int64 where numpy reads indices
    struct.error,
)


def _decode_payload_at(
    key: str | None,
    raw: bytes,
    info: _BaseInfo | None,
    limit: int,
    wanted: frozenset[str] | None,
    header: FrameHeader,
    verify: bool,
) -> tuple[ProfileSnapshot, bool]:
    """:func:`_decode_payload`, its errors said to be at ``key``: a malformed payload's
    Python errors become ``CorruptError``."""
    try:
        return _decode_payload(raw, info, limit, wanted, header, verify)
    except CorruptError as exc:
        raise type(exc)(f"{exc.message} at {key}", key=key) from None
    except ValidationError:
        raise
    except _MALFORMED as exc:
        raise CorruptError(f"malformed payload at {key}: {exc!r:.200}", key=key) from None


def _check_content(snap: ProfileSnapshot, stored: int, verify: bool, key: str | None) -> None:
    """Check the rebuilt snapshot against the content checksum it was written with
    (``verify``); from then on that is the snapshot's checksum."""
    if verify and snap.checksum != stored:
        raise ChecksumMismatch(
            f"content checksum mismatch at {key}: stored {stored:08x}, decoded {snap.checksum:08x}",
            key=key,
        )
    snap._checksum = stored


class _Reader:
    """Hands out the payload's sections in order, each of the size the meta implies."""

    def __init__(self, raw: bytes, offset: int) -> None:
        self.view = memoryview(raw)
        self.offset = offset

    def take(self, size: int) -> memoryview:
        if size < 0 or self.offset + size > len(self.view):
            raise CorruptError(f"payload ends before a section of {size} bytes")
        out = self.view[self.offset : self.offset + size]
        self.offset += size
        return out

    def finish(self) -> None:
        if self.offset != len(self.view):
            raise CorruptError(f"{len(self.view) - self.offset} unread bytes after the sections")


class _Head(NamedTuple):
    """A payload's snapshot apart from its metrics: its own facts or its base's."""

    host: str
    seq: int
    start: int
    end: int
    facts: dict[str, Any]


class _Table(NamedTuple):
    """The metric table: names, kinds (spelled out) and units, in order."""

    names: list[str]
    kinds: list[str]
    units: list[str]


class _Times(NamedTuple):
    """The time groups and each metric's timestamps."""

    groups: list[tf.I64]
    of_metric: list[tf.I64]
    #: Each metric's length; ``None`` when every metric is ``n`` long (one time group).
    lengths: npt.NDArray[np.int64] | None
    n: int


class _Same(NamedTuple):
    """The metrics whose values are their base's, as (metric, base metric) index arrays,
    and whether each keeps its place in the base's table."""

    at: npt.NDArray[np.intp]
    base_at: npt.NDArray[np.intp]
    in_place: bool


_NO_SAME = _Same(_NO_ROWS, _NO_ROWS, False)
#: Every value group's rows: (metric positions, their values as matrix rows).
_Rows = list[tuple[npt.NDArray[np.intp], tf.F64]]


def _decode_payload(
    raw: bytes,
    info: _BaseInfo | None,
    limit: int,
    wanted: frozenset[str] | None,
    header: FrameHeader,
    verify: bool,
) -> tuple[ProfileSnapshot, bool]:
    """The snapshot a decompressed payload holds, and whether it holds only some of its
    metrics (those in ``wanted``): meta, times, unchanged metrics, values, in order."""
    meta, reader = _read_meta(raw, info)
    facts = {key: _fact(meta, info, key) for key in _FACT_KEYS}
    names, kinds, units = _metric_table(facts)
    head = _read_head(meta, info, facts)
    own_table = info is None or _TABLE in meta
    times = _read_times(meta, info, head.start, reader, limit, len(names))
    # Which metrics to rebuild: all, or those named in ``wanted``.
    need = None if wanted is None else _needed(names, wanted, None if own_table else info)
    same = _read_same(meta, info, len(names), own_table)
    decoded = _read_values(meta[_VALUE_GROUPS], len(names), times, need, same.at, reader, limit)
    kind_names = info.kind_names() if info is not None and not own_table else _kind_names(kinds)
    table = _Table(names, kind_names, units)
    if times.lengths is None and need is None and not (info is not None and info.partial):
        checked_meta = meta if verify else None
        return _columns_snapshot(head, table, times, decoded, same, info, checked_meta), False
    stored = header.content_checksum
    return _metrics_snapshot(
        head, table, times, decoded, same, info, need, stored
    ), need is not None


def _read_meta(raw: bytes, info: _BaseInfo | None) -> tuple[dict[str, Any], _Reader]:
    """The payload's meta, checked to hold only known keys, and a reader of the sections."""
    (meta_len,) = struct.unpack_from("<I", raw)
    # pydantic-core's parser (already a dependency) reads the meta in half the time of
    # json.loads; the same values, NaN and infinities refused as the writer never emits them.
    meta = pydantic_core.from_json(raw[4 : 4 + meta_len], allow_inf_nan=False)
    if not isinstance(meta, dict):
        raise CorruptError("payload meta is not a JSON object")
    unknown = set(meta) - (_DELTA_KEYS if info is not None else _KEYFRAME_KEYS)
    if unknown:
        raise CorruptError(f"unknown payload fields {sorted(unknown)}")
    return meta, _Reader(raw, 4 + meta_len)


def _metric_table(facts: dict[str, Any]) -> tuple[list[str], Any, list[str]]:
    """The metric table's names, kind codes and units, checked to be of one length."""
    names, kinds, units = facts[_TABLE]
    if not (len(names) == len(kinds) == len(units)):
        raise CorruptError("metric table columns differ in length")
    return names, kinds, units


def _read_head(meta: dict[str, Any], info: _BaseInfo | None, facts: dict[str, Any]) -> _Head:
    """Host, seq and window: a keyframe's own, a delta's relative to its base's."""
    if info is None:
        host, seq, (start, end) = meta[_HOST], meta[_SEQ], meta[_WINDOW]
    else:
        host, seq = info.host, info.seq + meta[_SEQ_STEP]
        pred = _predicted_window(info.window, meta[_SEQ_STEP])
        miss = meta.get(_WINDOW_MISS, [0, 0])
        start, end = pred[0] + miss[0], pred[1] + miss[1]
    if not all(isinstance(x, int) for x in (seq, start, end)) or not isinstance(host, str):
        raise CorruptError("host, seq or window of the wrong type")
    return _Head(host, seq, start, end, facts)


def _read_times(
    meta: dict[str, Any],
    info: _BaseInfo | None,
    start: int,
    reader: _Reader,
    limit: int,
    count: int,
) -> _Times:
    """The time groups, and each metric's (by ``mt``; without it, the one group)."""
    shift = start - info.window[0] if info is not None else 0
    groups = _decode_times(meta[_TIME_GROUPS], info, start, shift, reader, limit)
    mt = meta.get(_METRIC_TIMES)
    if mt is None:  # every metric has the one time group
        if count and not groups:
            raise CorruptError("metrics without a time group")
        return _Times(
            groups, [groups[0]] * count if count else [], None, groups[0].size if groups else 0
        )
    of = _indices(mt, len(groups))
    if of.size != count:
        raise CorruptError("time group list does not match the metric table")
    lengths = np.array([t.size for t in groups], dtype=np.int64)[of]
    return _Times(groups, [groups[g] for g in of.tolist()], lengths, 0)


def _read_same(meta: dict[str, Any], info: _BaseInfo | None, count: int, own_table: bool) -> _Same:
    """The metrics whose values are their base's (the meta's ``same``)."""
    if _SAME not in meta:
        return _NO_SAME
    if info is None:
        raise CorruptError("keyframe refers to a base for values")
    at, base_at = _same_pairs(meta[_SAME], count, len(info.facts[_TABLE][0]))
    return _Same(at, base_at, not own_table and bool((at == base_at).all()))


def _read_values(
    described: list[Any],
    count: int,
    times: _Times,
    need: npt.NDArray[np.bool_] | None,
    same_at: npt.NDArray[np.intp],
    reader: _Reader,
    limit: int,
) -> _Rows:
    """Every value group's rows (``need``: the needed ones), read to the payload's end;
    checks that every metric has its values once, from a group or from its base."""
    decoded: _Rows = []
    placed = [same_at]
    for group in described:
        n, rows_raw, *desc = group
        rows = _group_rows(n, rows_raw, count, times)
        placed.append(rows)
        picked = None if need is None else np.flatnonzero(need[rows])
        for at, vals in _decode_matrix(n, rows.size, desc, reader, limit, picked):
            decoded.append((rows if at is None else rows[at], vals))
    reader.finish()
    _check_placed(placed, count)
    return decoded


def _group_rows(n: Any, rows_raw: Any, count: int, times: _Times) -> npt.NDArray[np.intp]:
    """The metric positions of a value group of ``n`` values, checked against the
    metrics' lengths."""
    rows = np.arange(count) if rows_raw is None else _indices(rows_raw, count)
    lengths = times.lengths
    if not isinstance(n, int) or (
        bool(np.any(lengths[rows] != n))
        if lengths is not None
        else (rows.size > 0 and n != times.n)
    ):
        raise CorruptError("a value group's length differs from its metrics' timestamps")
    return rows


def _check_placed(placed: list[npt.NDArray[np.intp]], count: int) -> None:
    """Check that the groups and the unchanged metrics (``placed``) give each metric once."""
    # Indices are in range: as many as metrics, none twice, means each metric once.
    if sum(p.size for p in placed) != count or (
        count and np.bincount(np.concatenate(placed), minlength=count).max() != 1
    ):
        raise CorruptError("metric values missing or defined twice")


def _snapshot(
    head: _Head,
    *,
    metrics: tuple[MetricSeries, ...] | None = None,
    columns: MetricColumns | None = None,
    coding: _BaseInfo | None = None,
) -> ProfileSnapshot:
    facts = head.facts
    return ProfileSnapshot.trusted(
        host=head.host,
        seq=head.seq,
        window_start=head.start,
        window_end=head.end,
        fingerprint=facts[_FINGERPRINT],
        labels=facts[_LABELS],
        metadata=facts[_METADATA],
        metrics=metrics,
        columns=columns,
        coding=coding,
    )


def _columns_snapshot(
    head: _Head,
    table: _Table,
    times: _Times,
    decoded: _Rows,
    same: _Same,
    info: _BaseInfo | None,
    verify_meta: dict[str, Any] | None,
) -> ProfileSnapshot:
    """The usual case: every value in one matrix, which the checksum reads as is (when
    ``verify_meta``, the meta, is given), and the snapshot holds as columns (no object
    per metric until asked for)."""
    names = table.names
    full = _values_matrix(
        len(names), times.n, decoded, same.at, same.base_at, same.in_place, info, names
    )
    stamps = times.groups[0] if times.groups else _NO_CODES
    snap = _snapshot(head, columns=MetricColumns(names, table.kinds, table.units, stamps, full))
    if verify_meta is not None:
        snap._checksum = _checksum_of_parts(snap, verify_meta, info, table, times, full)
    return snap


def _checksum_of_parts(
    snap: ProfileSnapshot,
    meta: dict[str, Any],
    info: _BaseInfo | None,
    table: _Table,
    times: _Times,
    full: tf.F64,
) -> int:
    """The content checksum from the parts at hand: a delta that keeps its base's head
    or metric table takes their checksum lines from the base (computed once there)."""
    count, n = len(table.names), times.n
    keeps_head = info is not None and _BASE_HEAD.isdisjoint(meta)
    return content_checksum(
        snap,
        head=(
            checksum_head(info.head_prefix(), snap.seq, snap.window_start, snap.window_end)
            if keeps_head and info is not None
            else None
        ),
        table=(
            info.checksum_table(n)
            if info is not None and _TABLE not in meta
            else metric_table(table.names, table.kinds, table.units, repeat(n, count))
        ),
        timestamps=_repeated(times.groups[0], count) if count else None,
        values=full,
    )


def _metrics_snapshot(
    head: _Head,
    table: _Table,
    times: _Times,
    decoded: _Rows,
    same: _Same,
    info: _BaseInfo | None,
    need: npt.NDArray[np.bool_] | None,
    stored: int,
) -> ProfileSnapshot:
    """Metrics of several lengths, a partial decode or a delta of a partially decoded
    keyframe: the values placed a metric at a time. A keyframe decoded for some metrics
    keeps what deltas decoded for the same metrics need (``stored``: its checksum)."""
    lengths = times.lengths
    if lengths is None:
        lengths = np.full(len(table.names), times.n, dtype=np.int64)
    metrics = _metrics_one_by_one(
        decoded, same.at, same.base_at, info, need, lengths, (*table, times.of_metric)
    )
    coding = None
    if need is not None and info is None:
        kept = np.flatnonzero(need).tolist()
        values = {i: m.values for i, m in zip(kept, metrics, strict=True)}
        window = (head.start, head.end)
        coding = _PartialBase(head.facts, times.groups, head.host, head.seq, window, stored, values)
    return _snapshot(head, metrics=tuple(metrics), coding=coding)


def _values_matrix(
    count: int,
    n: int,
    decoded: list[tuple[npt.NDArray[np.intp], tf.F64]],
    same_i: npt.NDArray[np.intp],
    same_j: npt.NDArray[np.intp],
    same_in_place: bool,
    info: _BaseInfo | None,
    names: list[str],
) -> tf.F64:
    """Every metric's values (all ``n`` long) as rows of one read-only matrix."""
    if not same_i.size:
        full = np.empty((count, n), dtype=np.float64)
    else:
        assert info is not None
        base_mat, base_row = info.matrix(n)
        if same_in_place and base_mat.shape[0] == count:
            # Unchanged metrics keep their base rows: start from the base's matrix.
            full = base_mat.view(np.float64).copy()
        else:
            src = base_row[same_j]
            if int(src.min()) < 0:
                bad = names[int(same_i[np.argmin(src)])]
                raise CorruptError(f"metric {bad!r}: base values of the wrong length")
            full = np.empty((count, n), dtype=np.float64)
            full[same_i] = base_mat[src].view(np.float64)
    for at, vals in decoded:
        full[at] = vals
    full.flags.writeable = False
    return full


def _metrics_one_by_one(
    decoded: list[tuple[npt.NDArray[np.intp], tf.F64]],
    same_i: npt.NDArray[np.intp],
    same_j: npt.NDArray[np.intp],
    info: _BaseInfo | None,
    need: npt.NDArray[np.bool_] | None,
    time_size: npt.NDArray[np.int64],
    table: tuple[list[str], list[str], list[str], list[tf.I64]],
) -> list[MetricSeries]:
    """The metrics (``need``: those only) with values placed one metric at a time: for
    metrics of several lengths, partial decodes and partially decoded bases."""
    names, kind_names, units, time_of = table
    values: list[tf.F64 | None] = [None] * len(names)
    for i, j in zip(same_i.tolist(), same_j.tolist(), strict=True):
        if need is None or need[i]:
            v = info.values(j)  # type: ignore[union-attr]
            if v.size != time_size[i]:
                raise CorruptError(f"metric {names[i]!r}: base values of the wrong length")
            values[i] = v
    for at, vals in decoded:
        vals.flags.writeable = False
        for r, v in zip(at.tolist(), vals, strict=True):
            values[r] = v
    filled = cast("list[tf.F64]", values)
    if need is None:
        return MetricSeries.trusted_many(names, kind_names, units, time_of, filled)
    keep = np.flatnonzero(need).tolist()
    return MetricSeries.trusted_many(
        [names[i] for i in keep],
        [kind_names[i] for i in keep],
        [units[i] for i in keep],
        [time_of[i] for i in keep],
        [filled[i] for i in keep],
    )


def _repeated(ts: tf.I64, count: int) -> tf.I64:
    """``count`` copies of ``ts`` back to back (``np.tile`` in two calls, not twenty)."""
    out = np.empty((count, ts.size), dtype=np.int64)
    out[...] = ts
    return out


def _indices(raw: Any, size: int) -> npt.NDArray[np.intp]:
    """A JSON list of row indices as an array, each checked to lie in ``0..size``."""
    arr = np.asarray(raw, dtype=np.intp).reshape(-1)
    # Read as unsigned, a negative index is huge: one maximum checks both bounds.
    if arr.size and int(arr.view(np.uintp).max()) >= size:
        raise CorruptError(f"row index out of range 0..{size}")
    return arr


def _index(i: Any, size: int) -> int:
    if not isinstance(i, int) or not 0 <= i < size:
        raise CorruptError(f"index {i!r} out of range 0..{size}")
    return i


def _same_pairs(
    raw: Any, count: int, base_count: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The ``same`` field as (metric, base metric) index arrays, each checked to be in range."""
    if isinstance(raw, str) and raw == "*":
        if count > base_count:
            raise CorruptError(f"base metric index out of range 0..{base_count}")
        every = np.arange(count)
        return every, every
    pairs = np.asarray(raw)
    if pairs.size == 0:
        return _NO_ROWS, _NO_ROWS
    if pairs.dtype != np.intp or pairs.ndim != 2 or pairs.shape[1] != 2:
        raise CorruptError("unchanged metrics are not a list of index pairs")
    # Read as unsigned, a negative index is huge: one maximum checks both bounds.
    top_i, top_j = pairs.view(np.uintp).max(axis=0).tolist()
    if top_i >= count:
        raise CorruptError(f"unchanged metric index out of range 0..{count}")
    if top_j >= base_count:
        raise CorruptError(f"base metric index out of range 0..{base_count}")
    return pairs[:, 0], pairs[:, 1]


def _fact(meta: dict[str, Any], info: _BaseInfo | None, key: str) -> Any:
    if key in meta:
        return meta[key]
    if info is None:
        raise CorruptError(f"keyframe lacks {key!r}")
    return info.facts[key]


def _decode_times(
    described: list[Any],
    info: _BaseInfo | None,
    start: int,
    shift: int,
    reader: _Reader,
    limit: int,
) -> list[tf.I64]:
    *groups, width = described
    if not isinstance(width, int) or not 0 <= width <= 8:
        raise CorruptError("timestamp plane width out of range")
    own = [g for g in groups if g[0] != "b"]
    if any(not isinstance(g[2], int) or g[2] < 0 for g in own):
        raise CorruptError("time group length is not a count")
    _check_count(sum(g[2] for g in own), limit)
    # An irregular group of n timestamps stores n - 1 delta-of-delta codes (t0 is in the meta).
    irregular_total = sum(max(g[2] - 1, 0) for g in own if g[1] is None)
    planes = reader.take(irregular_total * width)
    stream = tf.unzigzag(tf.from_planes(planes, irregular_total, width)) if own else _NO_CODES
    base_groups = info.time_groups if info is not None else []
    out: list[tf.I64] = []
    pos = 0
    for g in groups:
        if g[0] == "b":
            ts = base_groups[_index(g[1], len(base_groups))] + np.int64(g[2] + shift)
        elif g[1] is None:
            t0, _, n = g
            dod = stream[pos : pos + n - 1]
            pos += n - 1
            ts = np.empty(n, dtype=np.int64)
            if n:
                ts[0] = start + t0
                ts[1:] = np.cumsum(np.cumsum(dod, dtype=np.int64), dtype=np.int64) + ts[0]
        else:
            t0, step, n = g
            ts = np.int64(start + t0) + np.arange(n, dtype=np.int64) * np.int64(step)
        ts.flags.writeable = False
        out.append(ts)
    return out


def _check_count(samples: int, limit: int) -> None:
    if samples < 0 or samples * 8 > limit:
        raise OversizedObject(f"declares {samples} samples, over the decode limit")


_UP_TO = [bytes(range(hi + 1)) for hi in range(128)]  # the byte values 0..hi


def _small_ints(raw: Any, size: int, hi: int, what: str) -> bytes:
    """A JSON list of ``size`` integers in ``0..hi`` (``hi`` < 128), as bytes.

    ``bytes()`` converts and range-checks such a list in one C loop, several
    times faster than ``np.asarray`` (which discovers the type of every item);
    ``bytes.count`` then counts a value without a numpy call.
    """
    if not isinstance(raw, list) or len(raw) != size:
        raise CorruptError(f"{what} list does not have {size} entries")
    try:
        data = bytes(raw)  # ints in 0..255, or an error
    except (TypeError, ValueError):
        raise CorruptError(f"{what} out of range 0..{hi}") from None
    if data.translate(None, _UP_TO[hi]):  # what is left is over hi
        raise CorruptError(f"{what} out of range 0..{hi}")
    return data


def _int8s(data: bytes) -> npt.NDArray[np.int8]:
    return np.frombuffer(data, dtype=np.int8)


def _read_width_classes(
    reader: _Reader, widths: bytes, n: int, chosen: tf.BoolArr | None
) -> tf.U64:
    """The codes of every row (``chosen``: of those rows only), in row order.

    The sections of widths 1..8 lie back to back and are whole blocks of ``n``
    bytes (one byte plane of one row), class after class, each class's rows in
    row order; so the rows sorted by width (a stable argsort) line up with them.
    """
    counts = list(map(widths.count, range(9)))
    to_row = np.argsort(_int8s(widths), kind="stable")  # sorted row -> row
    size = len(widths)
    if chosen is not None:  # sorted row -> its place among the chosen rows, or -1
        to_row = np.where(chosen, np.cumsum(chosen) - 1, -1)[to_row]
        size = int(np.count_nonzero(chosen))
    return _scatter_classes(reader, counts, n, to_row, size, chosen is not None)


def _read_nonzero_rows(
    reader: _Reader, widths: bytes, n: int
) -> tuple[tf.U64, npt.NDArray[np.intp]]:
    """The codes of the rows of a width above 0, in width order, and those rows (for
    corrections: most rows have none)."""
    counts = list(map(widths.count, range(9)))
    by_width = np.argsort(_int8s(widths), kind="stable")
    skip = counts[0]  # the rows of width 0 sort first
    to_row = np.arange(-skip, len(widths) - skip)
    codes = _scatter_classes(reader, counts, n, to_row, len(widths) - skip, False)
    return codes, by_width[skip:]


def _scatter_classes(
    reader: _Reader, counts: list[int], n: int, to_row: npt.NDArray[np.intp], size: int, drop: bool
) -> tf.U64:
    """Read the width-class sections of ``counts`` rows per width into ``size`` rows of
    codes, width-sorted row ``i`` going to row ``to_row[i]`` (``drop``: -1 means none).

    Every block (one byte plane of one row) is copied to its row and plane by one
    scatter (one per class, for layouts too large to cache): a copy per byte plane
    would cost a numpy call each.
    """
    total = sum(w * k for w, k in enumerate(counts))
    blocks = np.frombuffer(reader.take(n * total), dtype=np.uint8).reshape(total, n)
    out = np.zeros((size, n, 8), dtype=np.uint8)
    if n == 0 or total == 0:
        pass
    elif total <= _CACHED_BLOCKS:
        sorted_row, plane = _class_blocks(tuple(counts))
        row = to_row[sorted_row]
        if drop:
            keep = row >= 0
            row, plane, blocks = row[keep], plane[keep], blocks[keep]
        out[row, :, plane] = blocks
    else:
        first, offset = counts[0], 0
        for w in range(1, 9):
            k = counts[w]
            if not k:
                continue
            block = blocks[offset : offset + k * w].reshape(w, k, n).transpose(1, 0, 2)
            row = to_row[first : first + k]
            if drop:
                keep = row >= 0
                row, block = row[keep], block[keep]
            out[row[:, None], :, np.arange(w)] = block
            first += k
            offset += k * w
    return out.view("<u8").reshape(size, n)


def _decode_matrix(
    n: int,
    rows: int,
    desc: list[Any],
    reader: _Reader,
    limit: int,
    picked: npt.NDArray[np.intp] | None = None,
) -> list[tuple[npt.NDArray[np.intp] | None, tf.F64]]:
    """The rows of one value group, as ``(positions in the group, values as matrix rows)``
    for its integer rows and for its raw rows (``picked``: only those positions);
    positions ``None``: every row of the group, in order."""
    ir, d, o, w, nx, xw, cw = desc
    _check_count(rows * n, limit)
    int_rows, raw_rows = _split_rows(ir, rows)
    chosen_i, pick_r = _chosen_rows(picked, rows, int_rows, raw_rows)
    ni = int_rows.size
    ivals = _read_int_rows(reader, n, (d, o, w), ni, chosen_i)
    if cw != 0:
        _add_corrections(reader, ivals, n, _small_ints(cw, ni, 8, "correction width"), chosen_i)
    _put_exceptions(reader, ivals, n, nx, ni, chosen_i)
    at = int_rows[chosen_i] if chosen_i is not None else None if ir is None else int_rows
    out: list[tuple[npt.NDArray[np.intp] | None, tf.F64]] = [(at, ivals)]
    raw = _read_raw_rows(reader, n, xw, raw_rows, pick_r)
    if raw is not None:
        out.append(raw)
    return out


def _split_rows(ir: Any, rows: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """A group's integer rows and raw rows (``ir``: the integer rows, ``None`` for all)."""
    if ir is None:
        return np.arange(rows), _NO_ROWS
    int_rows = np.asarray(ir, dtype=np.intp).reshape(-1)
    if int_rows.size and (
        np.any(np.diff(int_rows) <= 0) or int_rows[0] < 0 or int_rows[-1] >= rows
    ):
        raise CorruptError("integer row list is not sorted, unique and in range")
    is_raw = np.ones(rows, dtype=np.bool_)
    is_raw[int_rows] = False
    return int_rows, is_raw.nonzero()[0]


def _chosen_rows(
    picked: npt.NDArray[np.intp] | None,
    rows: int,
    int_rows: npt.NDArray[np.intp],
    raw_rows: npt.NDArray[np.intp],
) -> tuple[tf.BoolArr | None, npt.NDArray[np.intp] | None]:
    """For a partial decode (``picked``: the group positions wanted), which integer rows
    are wanted (a mask over them) and which raw rows (their places); ``None`` for all."""
    if picked is None:
        return None, None
    chosen = np.zeros(rows, dtype=np.bool_)
    chosen[picked] = True
    return chosen[int_rows], np.flatnonzero(chosen[raw_rows])


def _read_int_rows(
    reader: _Reader, n: int, described: tuple[Any, Any, Any], ni: int, chosen: tf.BoolArr | None
) -> tf.F64:
    """The integer rows' values (``chosen``: those rows only): codes read by width class,
    unzigzagged, their differences undone, scaled by their decimals."""
    d, o, w = described
    decimal_bytes = _small_ints(d, ni, tf.MAX_DECIMALS, "decimal scale")
    order_bytes = _small_ints(o, ni, 2, "difference order")
    codes = _read_width_classes(reader, _small_ints(w, ni, 8, "width"), n, chosen)
    decimals, orders = _int8s(decimal_bytes), _int8s(order_bytes)
    order_counts: list[int] | None = list(map(order_bytes.count, range(3)))
    if chosen is not None:
        decimals, orders, order_counts = decimals[chosen], orders[chosen], None
    ints = tf.undo_orders(tf.unzigzag(codes, inplace=True), orders, order_counts)
    return tf.ints_to_floats(ints, decimals)


def _add_corrections(
    reader: _Reader, ivals: tf.F64, n: int, widths: bytes, chosen: tf.BoolArr | None
) -> None:
    """Add to the bits of values a few ulps off their decimal reading their corrections."""
    corr, at = _read_nonzero_rows(reader, widths, n)
    if chosen is not None:  # keep the chosen rows', at their places among the chosen
        ok = chosen[at]
        corr, at = corr[ok], (np.cumsum(chosen) - 1)[at[ok]]
    if at.size:
        bits = ivals.view(np.int64)
        bits[at] += tf.unzigzag(corr, inplace=True)


def _put_exceptions(
    reader: _Reader, ivals: tf.F64, n: int, nx: Any, ni: int, chosen: tf.BoolArr | None
) -> None:
    """Put the ``nx`` exceptions (NaN, -0.0, far values) at their places, as raw bits."""
    if not isinstance(nx, int) or not 0 <= nx <= ni * n:
        raise CorruptError("exception count out of range")
    if not nx:
        return
    pos = np.frombuffer(reader.take(4 * nx), dtype="<u4").astype(np.intp)
    raw_bits = np.frombuffer(reader.take(8 * nx), dtype="<u8")
    if int(pos.max()) >= ni * n:
        raise CorruptError("exception position out of range")
    if chosen is not None:
        row = pos // n
        ok = chosen[row]
        pos = (np.cumsum(chosen) - 1)[row[ok]] * n + pos[ok] % n
        raw_bits = raw_bits[ok]
    ivals.reshape(-1).view(np.uint64)[pos] = raw_bits


def _read_raw_rows(
    reader: _Reader,
    n: int,
    xw: Any,
    raw_rows: npt.NDArray[np.intp],
    pick: npt.NDArray[np.intp] | None,
) -> tuple[npt.NDArray[np.intp], tf.F64] | None:
    """The raw rows (``pick``: those of them) and their values, XORed with the previous
    value in ``xw``-byte planes; ``None`` when the group has none."""
    if not isinstance(xw, int) or not 0 <= xw <= 8:
        raise CorruptError("raw plane width out of range")
    nr = raw_rows.size
    if not nr:
        return None
    xr = tf.from_planes_rows(reader.take(nr * n * xw), nr, n, xw, pick)
    raw_at = raw_rows if pick is None else raw_rows[pick]
    return raw_at, tf.unxor_rows(xr).view(np.float64)
