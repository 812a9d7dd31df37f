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

import json
import struct
from collections.abc import Collection
from typing import Any, cast

import numpy as np
import numpy.typing as npt

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
from snapcloud.models import MetricSeries, ProfileSnapshot

__all__ = ["DEFAULT_MAX_DECODED", "decode", "encode_delta", "encode_keyframe", "read_header"]

DEFAULT_MAX_DECODED = 1 << 30
_KIND_CODE = {"gauge": "g", "counter": "c"}
_KIND_NAME = {"g": "gauge", "c": "counter"}
_COMMON_KEYS = {"f", "l", "m", "t", "tg", "mt", "vg"}
_KEYFRAME_KEYS = _COMMON_KEYS | {"h", "s", "w"}
_DELTA_KEYS = _COMMON_KEYS | {"ds", "dw", "same"}


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
        meta["h"], meta["s"], meta["w"] = snap.host, snap.seq, [snap.window_start, snap.window_end]
    else:  # a delta says only how it differs from its base
        meta["ds"] = snap.seq - base.seq
        pred = _predicted_window((base.window_start, base.window_end), meta["ds"])
        miss = [snap.window_start - pred[0], snap.window_end - pred[1]]
        if miss != [0, 0]:
            meta["dw"] = miss
    for key, value in _facts(snap).items():
        if info is None or info.facts[key] != value:
            meta[key] = value
    sections: list[bytes] = []
    shift = snap.window_start - base.window_start if base is not None else 0
    meta["tg"], mt = _encode_times(snap, info, shift, sections)
    if mt is not None:
        meta["mt"] = mt
    meta["vg"], same = _encode_values(snap.metrics, info, sections)
    if same:
        identity = len(same) == len(snap.metrics) and all(i == j for i, j in same)
        meta["same"] = "*" if identity else same
    meta_bytes = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
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
    ms = snap.metrics
    table = [[m.name for m in ms], "".join(_KIND_CODE[m.kind] for m in ms), [m.unit for m in ms]]
    return {"f": snap.fingerprint, "l": snap.labels, "m": snap.metadata, "t": table}


class _BaseInfo:
    """What coding against a keyframe needs, computed once per keyframe and cached on it."""

    partial = False

    def __init__(self, base: ProfileSnapshot) -> None:
        self.facts = _facts(base)
        self.index = {m.name: j for j, m in enumerate(base.metrics)}
        self.time_groups = _unique_times(base.metrics)[0]
        self.host, self.seq = base.host, base.seq
        self.window = (base.window_start, base.window_end)
        self.checksum = base.checksum
        self._matrices: dict[int, tuple[tf.I64, dict[int, int]]] = {}
        self._base = base

    def kind_names(self) -> list[str]:
        """The metric kinds of the base's table, spelled out (computed once)."""
        cached: list[str] | None = getattr(self, "_kind_names", None)
        if cached is None:
            cached = self._kind_names = _kind_names(self.facts["t"][1])
        return cached

    def values(self, j: int) -> tf.F64:
        """The values of the base's metric ``j`` (in its metric table)."""
        return self._base.metrics[_index(j, len(self._base.metrics))].values

    def matrix(self, n: int) -> tuple[tf.I64, dict[int, int]]:
        """The value bits of every base metric of length ``n`` as rows, and metric -> row."""
        if n not in self._matrices:
            ms = self._base.metrics
            js = [j for j, m in enumerate(ms) if m.values.size == n]
            mat = _stack([ms[j].values for j in js], n).view(np.int64)
            self._matrices[n] = (mat, {j: r for r, j in enumerate(js)})
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
        self.index = {name: j for j, name in enumerate(facts["t"][0])}
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

    def matrix(self, n: int) -> tuple[tf.I64, dict[int, int]]:  # pragma: no cover - guarded
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
    info = base._cache.get("codec")
    if not isinstance(info, _BaseInfo):
        info = base._cache["codec"] = _BaseInfo(base)
    return info


def _stack(rows: list[tf.F64], n: int) -> tf.F64:
    # concatenate + reshape: np.stack costs ~1 us per row in argument checks.
    if not rows:
        return np.zeros((0, n), dtype=np.float64)
    return np.concatenate(rows).reshape(len(rows), n)


def _unique_times(metrics: tuple[MetricSeries, ...]) -> tuple[list[tf.I64], list[int]]:
    """The distinct timestamp arrays, and for each metric the index of its array."""
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
        elif ts.size >= 2 and bool(np.all(np.diff(ts) == ts[1] - ts[0])):
            described.append([int(ts[0]) - start, int(ts[1] - ts[0]), int(ts.size)])
        elif ts.size <= 1:
            described.append([int(ts[0]) - start if ts.size else 0, 0, int(ts.size)])
        else:
            irregular.append(tf.zigzag(np.diff(np.diff(ts), prepend=0)))
            described.append([int(ts[0]) - start, None, int(ts.size)])
    stream = np.concatenate(irregular) if irregular else np.zeros(0, dtype=np.uint64)
    width = tf.plane_width(stream)
    sections.append(tf.to_planes(stream, width))
    described.append(width)
    return described, (None if len(arrays) <= 1 else of_metric)


def _match_base_times(ts: tf.I64, base_groups: list[tf.I64]) -> tuple[int, int] | None:
    for i, b in enumerate(base_groups):
        if b.size == ts.size and ts.size:
            shift = ts[0] - b[0]
            if bool(np.all(ts - b == shift)):
                return i, int(shift)
    return None


def _encode_values(
    metrics: tuple[MetricSeries, ...], info: _BaseInfo | None, sections: list[bytes]
) -> tuple[list[list[Any]], list[list[int]]]:
    """Group metrics by length, drop rows equal to the base's, encode the rest as matrices."""
    by_len: dict[int, list[int]] = {}
    for k, m in enumerate(metrics):
        by_len.setdefault(m.values.size, []).append(k)
    groups: list[list[Any]] = []
    same: list[list[int]] = []
    for n, ks in by_len.items():
        matrix = _stack([metrics[k].values for k in ks], n)
        keep = np.ones(len(ks), dtype=np.bool_)
        if info is not None:
            keep = _unchanged_rows(matrix, [metrics[k].name for k in ks], info, n, ks, same)
        if not keep.any():
            continue
        rows = [k for k, kept in zip(ks, keep.tolist(), strict=True) if kept]
        all_rows = len(rows) == len(metrics)  # then rows are 0..count-1 in order
        groups.append([n, None if all_rows else rows, *_encode_matrix(matrix[keep], sections)])
    return groups, same


def _unchanged_rows(
    matrix: tf.F64,
    names: list[str],
    info: _BaseInfo,
    n: int,
    ks: list[int],
    same: list[list[int]],
) -> tf.BoolArr:
    """Mark rows whose bits equal the base metric of the same name; record them in ``same``."""
    base_mat, row_of = info.matrix(n)
    js = [info.index.get(name, -1) for name in names]
    base_rows = np.array([row_of.get(j, -1) for j in js], dtype=np.intp)
    has = base_rows >= 0
    equal = np.zeros(len(ks), dtype=np.bool_)
    if has.any():
        equal[has] = np.all(matrix[has].view(np.int64) == base_mat[base_rows[has]], axis=1)
    for r in np.flatnonzero(equal).tolist():
        same.append([ks[r], js[r]])
    keep: tf.BoolArr = ~equal
    return keep


def _width_classes(codes: tf.U64, sections: list[bytes]) -> list[int]:
    """Append one byte-plane section per width 1..8 (rows of that width); return the widths."""
    widths = tf.row_widths(codes)
    counts = np.bincount(widths, minlength=9).tolist()
    for w in range(1, 9):
        sections.append(tf.to_planes(codes[widths == w].ravel(), w) if counts[w] else b"")
    out: list[int] = widths.tolist()
    return out


def _encode_matrix(values: tf.F64, sections: list[bytes]) -> list[Any]:
    """``[int_rows, decimals, orders, widths, exceptions, raw_width, correction_widths]``."""
    n = values.shape[1]
    decimals, ints, corr, near = tf.find_decimals(values)
    is_int = near.sum(axis=1) * 2 >= n
    int_rows = np.flatnonzero(is_int)
    raw_rows = np.flatnonzero(~is_int)
    near_i = near[int_rows]
    iv = tf.fill_forward(ints[int_rows], near_i)
    orders = tf.best_orders(iv) if n > 1 else np.zeros(int_rows.size, dtype=np.int8)
    widths = _width_classes(tf.zigzag(tf.apply_orders(iv, orders)), sections)
    corr_i = corr[int_rows]
    corr_widths: list[int] | int = 0
    if corr_i.any():
        corr_widths = _width_classes(tf.zigzag(corr_i), sections)
    bad = np.flatnonzero(~near_i.ravel())
    sections.append(bad.astype("<u4").tobytes())
    sections.append(values[int_rows].ravel()[bad].astype("<f8").view("<u8").tobytes())
    xr = tf.xor_rows(values[raw_rows].view(np.uint64)).ravel()
    xw = tf.plane_width(xr)
    sections.append(tf.to_planes(xr, xw))
    return [
        None if raw_rows.size == 0 else int_rows.tolist(),
        decimals[int_rows].tolist(),
        orders.tolist(),
        widths,
        int(bad.size),
        xw,
        corr_widths,
    ]


# --------------------------------------------------------------------------- decode


def read_header(data: bytes, *, key: str | None = None) -> FrameHeader:
    """Check an object's frame (magic, version, sizes, frame checksum) and return its header."""
    return unpack_frame(data, key=key)[0]


def decode(
    data: bytes,
    *,
    base: ProfileSnapshot | None = None,
    max_decoded_size: int = DEFAULT_MAX_DECODED,
    verify: bool = True,
    key: str | None = None,
    metrics: Collection[str] | None = None,
) -> ProfileSnapshot:
    """Rebuild the snapshot an object holds, bit for bit.

    A delta needs ``base``, the keyframe it names. ``metrics`` decodes only the
    metrics of those names (the others are skipped, not rebuilt): the content
    checksum covers the whole snapshot, so a partial decode relies on the frame
    checksum, which covers every stored byte; the result's own ``checksum`` is
    that of what it holds (``stored_checksum`` in its ``_cache`` is the object's).
    A keyframe decoded for some metrics serves as the base
    of deltas decoded for the same metrics. Raises ``UnknownFormat``,
    ``TruncatedObject``, ``OversizedObject`` (declared size over
    ``max_decoded_size``, checked before decompressing), ``WrongBase``,
    ``ChecksumMismatch`` or ``CorruptError`` for a malformed payload.
    """
    header, payload = unpack_frame(data, key=key)
    info = None
    if header.is_delta:
        info = _info(base)
        if info is None or info.seq != header.base_seq or info.checksum != header.base_checksum:
            got = "none" if info is None else f"seq {info.seq} checksum {info.checksum:08x}"
            raise WrongBase(
                f"delta {header.seq} needs base seq {header.base_seq} checksum "
                f"{header.base_checksum:08x}, got {got} at {key}",
                key=key,
                seq=header.seq,
            )
    if header.decoded_size > max_decoded_size:
        raise OversizedObject(
            f"declared decoded size {header.decoded_size} is over the limit {max_decoded_size} "
            f"at {key}",
            key=key,
        )
    raw = _zstd.decompress(
        payload,
        header.decoded_size,
        version=header.version,
        number=header.dictionary,
        key=key,
    )
    wanted = None if metrics is None else frozenset(metrics)
    try:
        snap = _decode_payload(raw, info, max_decoded_size, wanted, header)
    except CorruptError as exc:
        raise type(exc)(f"{exc.message} at {key}", key=key) from None
    except ValidationError:
        raise
    except (
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
        RecursionError,  # json.loads of a meta nested thousands deep
        struct.error,
    ) as exc:
        raise CorruptError(f"malformed payload at {key}: {exc!r:.200}", key=key) from None
    if snap.seq != header.seq:
        raise CorruptError(f"payload seq {snap.seq} != header seq {header.seq} at {key}", key=key)
    if snap._cache.get("partial"):
        return snap  # its own checksum is computed when asked for
    if verify and snap.checksum != header.content_checksum:
        raise ChecksumMismatch(
            f"content checksum mismatch at {key}: stored {header.content_checksum:08x}, "
            f"decoded {snap.checksum:08x}",
            key=key,
        )
    snap._checksum = header.content_checksum
    return snap


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


def _decode_payload(
    raw: bytes,
    info: _BaseInfo | None,
    limit: int,
    wanted: frozenset[str] | None,
    header: FrameHeader,
) -> ProfileSnapshot:
    (meta_len,) = struct.unpack_from("<I", raw)
    meta = json.loads(raw[4 : 4 + meta_len])
    if not isinstance(meta, dict):
        raise CorruptError("payload meta is not a JSON object")
    unknown = set(meta) - (_DELTA_KEYS if info is not None else _KEYFRAME_KEYS)
    if unknown:
        raise CorruptError(f"unknown payload fields {sorted(unknown)}")
    reader = _Reader(raw, 4 + meta_len)
    facts = {key: _fact(meta, info, key) for key in ("f", "l", "m", "t")}
    names, kinds, units = facts["t"]
    count = len(names)
    if not (count == len(kinds) == len(units)):
        raise CorruptError("metric table columns differ in length")
    if info is None:
        host, seq, (start, end) = meta["h"], meta["s"], meta["w"]
    else:
        host, seq = info.host, info.seq + meta["ds"]
        pred = _predicted_window(info.window, meta["ds"])
        miss = meta.get("dw", [0, 0])
        start, end = pred[0] + miss[0], pred[1] + miss[1]
    if not all(isinstance(x, int) for x in (seq, start, end)) or not isinstance(host, str):
        raise CorruptError("host, seq or window of the wrong type")
    shift = start - info.window[0] if info is not None else 0
    times = _decode_times(meta["tg"], info, start, shift, reader, limit)
    mt = meta.get("mt")
    if mt is None:
        time_of = [times[0]] * count if count else []
        time_size = np.full(count, times[0].size if times else -1, dtype=np.int64)
    else:
        of = _indices(mt, len(times))
        if of.size != count:
            raise CorruptError("time group list does not match the metric table")
        time_of = [times[g] for g in of.tolist()]
        time_size = np.array([t.size for t in times], dtype=np.int64)[of]
    # Which metrics to rebuild: all, or those named in ``wanted``.
    need = None if wanted is None else _needed(names, wanted, info if "t" not in meta else None)
    values: list[tf.F64 | None] = [None] * count
    placed: list[npt.NDArray[np.intp]] = []
    if "same" in meta:
        if info is None:
            raise CorruptError("keyframe refers to a base for values")
        pairs = [(i, i) for i in range(count)] if meta["same"] == "*" else meta["same"]
        for i, j in pairs:
            if need is None or need[_index(i, count)]:
                v = info.values(j)
                if v.size != time_size[_index(i, count)]:
                    raise CorruptError(f"metric {names[i]!r}: base values of the wrong length")
                values[i] = v
        placed.append(np.array([i for i, _ in pairs], dtype=np.intp))
    for group in meta["vg"]:
        n, rows_raw, *desc = group
        rows = np.arange(count) if rows_raw is None else _indices(rows_raw, count)
        if not isinstance(n, int) or bool(np.any(time_size[rows] != n)):
            raise CorruptError("a value group's length differs from its metrics' timestamps")
        placed.append(rows)
        picked = None if need is None else np.flatnonzero(need[rows])
        decoded = _decode_matrix(n, rows.size, desc, reader, limit, picked)
        out_rows = rows if picked is None else rows[picked]
        for row, v in zip(out_rows.tolist(), decoded, strict=True):
            values[row] = v
    reader.finish()
    if count and not np.array_equal(
        np.bincount(np.concatenate(placed) if placed else np.zeros(0, np.intp), minlength=count),
        np.ones(count, dtype=np.intp),
    ):
        raise CorruptError("metric values missing or defined twice")
    kind_names = info.kind_names() if info is not None and "t" not in meta else _kind_names(kinds)
    # Every metric was placed once, with a length checked against its timestamps.
    filled = cast("list[tf.F64]", values)
    if need is None:
        metrics = list(map(MetricSeries.trusted, names, kind_names, units, time_of, filled))
    else:
        trusted = MetricSeries.trusted
        metrics = [
            trusted(names[i], kind_names[i], units[i], time_of[i], filled[i])
            for i in np.flatnonzero(need).tolist()
        ]
    snap = ProfileSnapshot.trusted(
        host=host,
        seq=seq,
        window_start=start,
        window_end=end,
        fingerprint=facts["f"],
        labels=facts["l"],
        metadata=facts["m"],
        metrics=tuple(metrics),
    )
    snap._cache["stored_checksum"] = header.content_checksum
    if need is not None:
        snap._cache["partial"] = True
    if need is not None and info is None:  # a partial keyframe: what its deltas will need
        kept = np.flatnonzero(need).tolist()
        snap._cache["codec"] = _PartialBase(
            facts,
            times,
            host,
            seq,
            (start, end),
            header.content_checksum,
            {i: m.values for i, m in zip(kept, metrics, strict=True)},
        )
    return snap


def _indices(raw: Any, size: int) -> npt.NDArray[np.intp]:
    """A JSON list of row indices as an array, each checked to lie in ``0..size``."""
    arr = np.asarray(raw, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise CorruptError(f"row index out of range 0..{size}")
    return arr.astype(np.intp)


def _index(i: Any, size: int) -> int:
    if not isinstance(i, int) or not 0 <= i < size:
        raise CorruptError(f"index {i!r} out of range 0..{size}")
    return i


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
    stream = tf.unzigzag(tf.from_planes(planes, irregular_total, width))
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


def _small_ints(raw: Any, size: int, lo: int, hi: int, what: str) -> npt.NDArray[np.int8]:
    arr = np.asarray(raw, dtype=np.int64).reshape(size)
    if size and (arr.min() < lo or arr.max() > hi):
        raise CorruptError(f"{what} out of range {lo}..{hi}")
    return arr.astype(np.int8)


def _read_width_classes(
    reader: _Reader, widths: npt.NDArray[np.int8], n: int, pick: npt.NDArray[np.intp] | None
) -> tf.U64:
    """The codes of every row (``pick``: of those rows only, in that order)."""
    codes = np.zeros((widths.size if pick is None else pick.size, n), dtype=np.uint64)
    counts = np.bincount(widths, minlength=9).tolist()
    picked_widths = None if pick is None else widths[pick]
    for w in range(1, 9):
        k = counts[w]
        planes = reader.take(k * n * w)
        if not k:
            continue
        if picked_widths is None:
            codes[widths == w] = tf.from_planes_rows(planes, k, n, w)
            continue
        dest = np.flatnonzero(picked_widths == w)
        if dest.size:
            within = np.searchsorted(np.flatnonzero(widths == w), pick[dest])  # type: ignore[index]
            codes[dest] = tf.from_planes_rows(planes, k, n, w, within)
    return codes


def _decode_matrix(
    n: int,
    rows: int,
    desc: list[Any],
    reader: _Reader,
    limit: int,
    picked: npt.NDArray[np.intp] | None = None,
) -> list[tf.F64]:
    """The rows of one value group (``picked``: only those positions, in that order)."""
    ir, d, o, w, nx, xw, cw = desc
    _check_count(rows * n, limit)
    int_rows = np.arange(rows) if ir is None else np.asarray(ir, dtype=np.intp).reshape(-1)
    ni = int_rows.size
    if ni and (np.any(np.diff(int_rows) <= 0) or int_rows[0] < 0 or int_rows[-1] >= rows):
        raise CorruptError("integer row list is not sorted, unique and in range")
    is_raw = np.ones(rows, dtype=np.bool_)
    is_raw[int_rows] = False
    raw_rows = np.flatnonzero(is_raw)
    pick_i = pick_r = None
    if picked is not None:
        chosen = np.zeros(rows, dtype=np.bool_)
        chosen[picked] = True
        pick_i = np.flatnonzero(chosen[int_rows])
        pick_r = np.flatnonzero(chosen[raw_rows])
    decimals = _small_ints(d, ni, 0, tf.MAX_DECIMALS, "decimal scale")
    orders = _small_ints(o, ni, 0, 2, "difference order")
    widths = _small_ints(w, ni, 0, 8, "width")
    codes = _read_width_classes(reader, widths, n, pick_i)
    if pick_i is not None:
        decimals, orders = decimals[pick_i], orders[pick_i]
    ivals = tf.ints_to_floats(tf.undo_orders(tf.unzigzag(codes), orders), decimals)
    if cw != 0:
        cwidths = _small_ints(cw, ni, 0, 8, "width")
        corr = tf.unzigzag(_read_width_classes(reader, cwidths, n, pick_i))
        ivals = (ivals.view(np.int64) + corr).view(np.float64)
    if not isinstance(nx, int) or not 0 <= nx <= ni * n:
        raise CorruptError("exception count out of range")
    pos = np.frombuffer(reader.take(4 * nx), dtype="<u4").astype(np.intp)
    bits = np.frombuffer(reader.take(8 * nx), dtype="<u8")
    if nx and int(pos.max()) >= ni * n:
        raise CorruptError("exception position out of range")
    if pick_i is not None and nx:
        slot = np.full(ni, -1, dtype=np.intp)
        slot[pick_i] = np.arange(pick_i.size)
        at = slot[pos // n] if n else pos
        ok = at >= 0
        pos, bits = at[ok] * n + pos[ok] % n, bits[ok]
    ivals.reshape(-1).view(np.uint64)[pos] = bits
    nr = raw_rows.size
    if not isinstance(xw, int) or not 0 <= xw <= 8:
        raise CorruptError("raw plane width out of range")
    xr = tf.from_planes_rows(reader.take(nr * n * xw), nr, n, xw, pick_r)
    rvals = tf.unxor_rows(xr).view(np.float64)
    ivals.flags.writeable = False
    rvals.flags.writeable = False
    if picked is None:
        out: list[tf.F64] = [np.empty(0)] * rows
        for k, r in enumerate(int_rows.tolist()):
            out[r] = ivals[k]
        for k, r in enumerate(raw_rows.tolist()):
            out[r] = rvals[k]
        return out
    # picked positions in order: each is either an integer row or a raw row
    assert pick_i is not None and pick_r is not None
    by_pos: dict[int, tf.F64] = {}
    for k, r in enumerate(int_rows[pick_i].tolist()):
        by_pos[r] = ivals[k]
    for k, r in enumerate(raw_rows[pick_r].tolist()):
        by_pos[r] = rvals[k]
    return [by_pos[r] for r in picked.tolist()]
