"""Pure, vectorized transforms the codec chains together.

Each function does one step on whole numpy arrays (a matrix row per metric);
none loops per sample. Every encode step has its inverse beside it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

#: Largest decimal scale tried: values with up to this many decimals are stored as integers.
MAX_DECIMALS = 9
_POW10 = np.array([10.0**d for d in range(MAX_DECIMALS + 1)], dtype=np.float64)
_EXACT_INT = 2.0**53


def zigzag(x: I64) -> U64:
    """Map signed to unsigned so small magnitudes get small codes: 0,-1,1,-2 -> 0,1,2,3."""
    return ((x << 1) ^ (x >> 63)).view(np.uint64)


def unzigzag(u: U64, *, inplace: bool = False) -> I64:
    """Inverse of :func:`zigzag`; ``inplace``: in ``u``'s memory (one new array, not three)."""
    sign = (u & np.uint64(1)).view(np.int64)
    np.negative(sign, out=sign)  # 0 or -1: all ones
    if inplace:
        u >>= np.uint64(1)
        out: I64 = u.view(np.int64)
    else:
        out = (u >> np.uint64(1)).view(np.int64)
    out ^= sign
    return out


def plane_width(u: U64) -> int:
    """How many low bytes are needed to hold every value of ``u`` (0 when all are zero)."""
    if u.size == 0:
        return 0
    top = int(np.bitwise_or.reduce(u, axis=None))
    return (top.bit_length() + 7) // 8


def to_planes(u: U64, width: int) -> bytes:
    """Byte-shuffle: all lowest bytes, then all second bytes, ... up to ``width`` planes.

    Bytes of equal significance sit together, so zstd sees long runs of zeros
    and near-constant high bytes.
    """
    if width == 0 or u.size == 0:
        return b""
    as_bytes = np.ascontiguousarray(u, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return np.ascontiguousarray(as_bytes[:, :width].T).tobytes()


def planes_into(out: npt.NDArray[np.uint8], planes: npt.NDArray[np.uint8]) -> None:
    """Write ``width`` byte planes (a ``width x count`` array) into the low bytes of
    ``out`` (``count x 8``, the bytes of ``count`` little-endian values).

    One strided copy per plane: several times faster than one transposed copy,
    whose innermost loop would be only ``width`` bytes long.
    """
    for b in range(planes.shape[0]):
        out[:, b] = planes[b]


def from_planes(buf: bytes | memoryview, count: int, width: int) -> U64:
    """Inverse of :func:`to_planes` for ``count`` values."""
    out = np.zeros((count, 8), dtype=np.uint8)
    if width:
        planes_into(out, np.frombuffer(buf, dtype=np.uint8).reshape(width, count))
    return out.view("<u8").reshape(count).astype(np.uint64, copy=False)


def from_planes_rows(
    buf: bytes | memoryview,
    rows: int,
    n: int,
    width: int,
    pick: npt.NDArray[np.intp] | None = None,
) -> U64:
    """Inverse of :func:`to_planes` for a ``rows x n`` matrix; ``pick``: those rows only."""
    k = rows if pick is None else pick.size
    out = np.zeros((k * n, 8), dtype=np.uint8)
    if width and k and n:
        planes = np.frombuffer(buf, dtype=np.uint8).reshape(width, rows, n)
        if pick is not None:
            planes = planes[:, pick, :]
        planes_into(out, planes.reshape(width, k * n))
    return out.view("<u8").reshape(k, n)


def difference_orders(ints: I64) -> tuple[npt.NDArray[np.int8], I64]:
    """Per row, the difference order (0, 1 or 2) with the smallest total magnitude, and
    the rows differenced by their orders (each order keeps the leading values, wrapping
    int64; :func:`undo_orders` inverts it).

    Ties go to the lower order. A magnitude is log2 read off the float exponent
    field: cheap, and close enough to rank orders (no int64 overflow either).
    All three orders are computed as one ``3 x rows x n`` array, so ranking and
    picking take a handful of numpy calls, not a few per order.
    """
    k, n = ints.shape
    by_order = np.empty((3, k, n), dtype=np.int64)
    by_order[0] = ints
    by_order[1:, :, :1] = ints[:, :1]
    np.subtract(ints[:, 1:], ints[:, :-1], out=by_order[1, :, 1:])
    once = by_order[1]
    np.subtract(once[:, 1:], once[:, :-1], out=by_order[2, :, 1:])
    mags = by_order[:, :, 1:].astype(np.float64)
    np.abs(mags, out=mags)
    mags += 1.0
    exponents = mags.view(np.int64)
    exponents >>= 52
    orders: npt.NDArray[np.int8] = exponents.sum(axis=2).argmin(axis=0).astype(np.int8)
    return orders, by_order[orders, np.arange(k)]


def undo_orders(codes: I64, orders: npt.NDArray[np.int8], counts: list[int] | None = None) -> I64:
    """Inverse of :func:`difference_orders`, in place: rows of order 1 or more are summed
    once, rows of order 2 once more (``counts``: how many rows have each order, if known)."""
    if counts is None:
        counts = np.bincount(orders, minlength=3).tolist()
    for order in (1, 2):
        todo = sum(counts[order:])
        if todo == codes.shape[0]:
            np.cumsum(codes, axis=1, dtype=np.int64, out=codes)
        elif todo:
            rows = (orders >= order).nonzero()[0]
            codes[rows] = np.cumsum(codes[rows], axis=1, dtype=np.int64)
    return codes


def ints_to_floats(ints: I64, decimals: npt.NDArray[np.int8]) -> F64:
    """The one way integers become values: ``int / 10**d``, exact IEEE division per row."""
    out = ints.astype(np.float64)
    out /= _POW10[decimals][:, None]
    return out


#: A value within this many units in the last place of its decimal reading is stored
#: as that reading plus a small correction (``51.846000000000004`` is 51.846 + 1 ulp).
NEAR_ULPS = 1 << 20


def find_decimals(values: F64) -> tuple[npt.NDArray[np.int8], I64, I64, BoolArr, I64]:
    """Per row the smallest decimal scale that reads the most values to within a few ulps.

    Returns ``(decimals, ints, corrections, near, counts)``: wherever ``near`` is
    true, the bits of ``ints[i] / 10**decimals[i]`` plus ``corrections[i]`` are the
    bits of ``values[i]`` (corrections are mostly zero); ``counts`` is ``near``
    per row.

    The scales are tried in two rounds; the second tries the rows that the first
    left short of fully near (noisy ones, mostly) at every larger scale in one go. A
    matrix of more than ``_SMALL_MATRIX`` values tries scales 0 to
    ``_SCALES_ONE_BY_ONE`` first, one by one, each only for the rows not yet fully
    near, so integer and one-decimal series cost one or two passes; a smaller one
    tries scales below ``_SMALL_FIRST_ROUND`` in one go, since for it a pass's numpy
    calls cost more than the arithmetic that skipping scales saves. Either way a
    larger scale wins only by more near values, so the answer is the same.
    """
    n = values.shape[1]
    bits = values.view(np.int64)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", over="ignore"):
        if values.size <= _SMALL_MATRIX:
            stop = _SMALL_FIRST_ROUND
            best_d, ints, corr, near, best_cnt = _scales_at_once(values, bits, finite, stop)
        else:
            stop = _SCALES_ONE_BY_ONE + 1
            best_d, ints, corr, near, best_cnt = _scales_one_by_one(values, bits, finite, stop)
        todo = (best_cnt < n).nonzero()[0]
        if todo.size:
            best = _best_scale(values[todo], bits[todo], finite[todo], stop, best_cnt[todo])
            if best is not None:
                improved, scale, cnt, cand, diff, good = best
                sel = todo[improved]
                best_d[sel] = scale
                best_cnt[sel] = cnt
                ints[sel] = cand
                corr[sel] = np.where(good, diff, 0)
                near[sel] = good
    return best_d, ints, corr, near, best_cnt


#: Scales a large matrix tries row set by row set, before the rows left try all larger
#: scales at once.
_SCALES_ONE_BY_ONE = 2
#: Matrices up to this many values try scales 0 to ``_SMALL_FIRST_ROUND - 1`` at once,
#: then the rows left the larger ones: a day of a 5-minute series (288 values) spent
#: most of its encode time in the numpy calls of passes one scale at a time.
_SMALL_MATRIX = 4096
_SMALL_FIRST_ROUND = 5

_Decimals = tuple[npt.NDArray[np.int8], I64, I64, BoolArr, I64]


def _scales_one_by_one(values: F64, bits: I64, finite: BoolArr, stop: int) -> _Decimals:
    """:func:`find_decimals` over scales ``0..stop-1``, a scale at a time, each for the
    rows not yet fully near; the first pass, over every row, fills the results whole."""
    rows, n = values.shape
    ints, diff, near, best_cnt = _near_at(values, bits, finite, 0)
    corr = np.where(near, diff, 0)
    best_d = np.zeros(rows, dtype=np.int8)
    todo = (best_cnt < n).nonzero()[0]
    for d in range(1, stop):
        if todo.size == 0:
            break
        v = values[todo]
        cand, diff, good, cnt = _near_at(v, v.view(np.int64), finite[todo], d)
        better = cnt > best_cnt[todo]
        left = todo[cnt < n]
        if not better.all():  # (usually every row left does better)
            todo, cand, diff = todo[better], cand[better], diff[better]
            good, cnt = good[better], cnt[better]
        best_d[todo] = d
        best_cnt[todo] = cnt
        ints[todo] = cand
        corr[todo] = np.where(good, diff, 0)
        near[todo] = good
        todo = left
    return best_d, ints, corr, near, best_cnt


def _scales_at_once(values: F64, bits: I64, finite: BoolArr, stop: int) -> _Decimals:
    """:func:`find_decimals` over scales ``0..stop-1``, every row at every scale at once."""
    cand, diff, good, cnt = _at_scales(values, bits, finite, 0, stop)
    pick = cnt.argmax(axis=0)  # the first maximum: the smallest scale
    rows = np.arange(values.shape[0])
    near = good[pick, rows]
    corr = np.where(near, diff[pick, rows], 0)
    return pick.astype(np.int8), cand[pick, rows], corr, near, cnt[pick, rows]


def _best_scale(
    v: F64, bits: I64, finite: BoolArr, first: int, best_cnt: I64
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], I64, I64, I64, BoolArr] | None:
    """Rows ``v`` read at every scale from ``first`` on at once: those whose most-near
    scale (the smallest, on a tie) beats ``best_cnt``, as ``(rows, scale, count, ints,
    distances, near)``; ``None`` when no row improves.

    What a row would get trying the scales one by one, where a later scale wins only
    by more near values.
    """
    cand, diff, good, cnt = _at_scales(v, bits, finite, first)
    pick = cnt.argmax(axis=0)  # the first maximum: the smallest scale
    rows = np.arange(v.shape[0])
    top = cnt[pick, rows]
    rows = (top > best_cnt).nonzero()[0]
    if not rows.size:
        return None
    pick = pick[rows]
    return rows, pick + first, top[rows], cand[pick, rows], diff[pick, rows], good[pick, rows]


def _at_scales(
    v: F64, bits: I64, finite: BoolArr, first: int, stop: int = MAX_DECIMALS + 1
) -> tuple[I64, I64, BoolArr, I64]:
    """:func:`_near_at` for every scale from ``first`` to ``stop - 1``, as ``scales x rows
    x n`` arrays (the counts ``scales x rows``): the same arithmetic, in a handful of
    numpy calls.

    Steps write into memory an earlier step is done with: fewer large temporaries
    live at once, so fewer come fresh from the system (in a loop over ten scales of
    a week of 5-minute values, 2016 a row, this took a third of the time).
    """
    scales = _POW10[first:stop, None, None]
    scaled = v * scales
    cand = np.rint(scaled, out=scaled).astype(np.int64)
    back = cand.astype(np.float64)
    back /= scales
    diff = back.view(np.int64)
    np.subtract(bits, diff, out=diff)
    good = np.abs(diff, out=scaled.view(np.int64)) < NEAR_ULPS
    good &= finite
    return cand, diff, good, good.sum(axis=2)


def _near_at(v: F64, bits: I64, finite: BoolArr, d: int) -> tuple[I64, I64, BoolArr, I64]:
    """Rows ``v`` read at decimal scale ``d``: the integers, the bit distance of their
    reading from ``v``, where that is within ``NEAR_ULPS``, and how often per row."""
    scaled = v * _POW10[d] if d else v
    # A cast of NaN or of a value out of int64 range gives garbage; the
    # round-trip distance below rejects it, so no range test is needed.
    cand = np.rint(scaled).astype(np.int64)
    back = cand.astype(np.float64) / _POW10[d] if d else cand.astype(np.float64)
    diff = bits - back.view(np.int64)
    good = np.abs(diff) < NEAR_ULPS
    good &= finite
    return cand, diff, good, good.sum(axis=1)


def fill_forward(ints: I64, ok: BoolArr) -> I64:
    """Replace entries that are not ``ok`` with the previous ok entry of their row.

    Exceptions are patched back after decoding; filling keeps the differences
    around them small.
    """
    n = ints.shape[1]
    idx = np.where(ok, np.arange(n), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(ints, idx, axis=1)


def xor_rows(bits: U64) -> U64:
    """Each value XOR its predecessor in the row (Gorilla's idea, byte-aligned)."""
    out: U64 = bits.copy()
    out[:, 1:] ^= bits[:, :-1]
    return out


def unxor_rows(x: U64) -> U64:
    """Inverse of :func:`xor_rows`."""
    return np.bitwise_xor.accumulate(x, axis=1)


#: ``2**(8*b)`` for b in 0..7: a value needs one more byte past each it reaches.
_WIDTH_STEPS = np.array([1 << (8 * b) for b in range(8)], dtype=np.uint64)


def row_widths(u: U64) -> npt.NDArray[np.int8]:
    """Per row, how many low bytes hold every value of the row (0 when the row is all zero)."""
    top = np.bitwise_or.reduce(u, axis=1) if u.shape[1] else np.zeros(u.shape[0], np.uint64)
    widths: npt.NDArray[np.int8] = np.searchsorted(_WIDTH_STEPS, top, side="right").astype(np.int8)
    return widths
