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


def unzigzag(u: U64) -> I64:
    """Inverse of :func:`zigzag`."""
    out: I64 = (u >> np.uint64(1)).view(np.int64) ^ -(u & np.uint64(1)).view(np.int64)
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


def from_planes(buf: bytes | memoryview, count: int, width: int) -> U64:
    """Inverse of :func:`to_planes` for ``count`` values."""
    out = np.zeros((count, 8), dtype=np.uint8)
    if width:
        out[:, :width] = np.frombuffer(buf, dtype=np.uint8).reshape(width, count).T
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
    out = np.zeros((k, n, 8), dtype=np.uint8)
    if width and k and n:
        planes = np.frombuffer(buf, dtype=np.uint8).reshape(width, rows, n)
        if pick is not None:
            planes = planes[:, pick, :]
        out[:, :, :width] = planes.transpose(1, 2, 0)
    return out.view("<u8").reshape(k, n)


def diff_rows(x: I64, order: int) -> I64:
    """``order``-th difference along each row, keeping the leading values (wrapping int64)."""
    out = x
    for _ in range(order):
        nxt = out.copy()
        nxt[:, 1:] = out[:, 1:] - out[:, :-1]
        out = nxt
    return out


def undiff_rows(x: I64, order: int) -> I64:
    """Inverse of :func:`diff_rows`."""
    out = x
    for _ in range(order):
        out = np.cumsum(out, axis=1, dtype=np.int64)
    return out


def best_orders(ints: I64, max_order: int = 2) -> npt.NDArray[np.int8]:
    """Per row, the difference order (0..max_order) with the smallest total magnitude.

    Ties go to the lower order. Magnitudes are summed as floats (no int64 overflow).
    """
    costs = np.empty((ints.shape[0], max_order + 1), dtype=np.int64)
    cur = ints
    for order in range(max_order + 1):
        if order:
            cur = diff_rows(cur, 1)
        # log2 from the float exponent field: cheap, and close enough to rank orders.
        mags = np.abs(cur[:, 1:].astype(np.float64)) + 1.0
        costs[:, order] = (mags.view(np.int64) >> 52).sum(axis=1)
    best: npt.NDArray[np.int8] = np.argmin(costs, axis=1).astype(np.int8)
    return best


def apply_orders(ints: I64, orders: npt.NDArray[np.int8]) -> I64:
    """Difference each row by its own order."""
    out: I64 = ints.copy()
    for order in range(1, int(orders.max(initial=0)) + 1):
        rows = orders == order
        if rows.any():
            out[rows] = diff_rows(ints[rows], order)
    return out


def undo_orders(codes: I64, orders: npt.NDArray[np.int8]) -> I64:
    """Inverse of :func:`apply_orders`."""
    out: I64 = codes.copy()
    for order in range(1, int(orders.max(initial=0)) + 1):
        rows = orders == order
        if rows.any():
            out[rows] = undiff_rows(codes[rows], order)
    return out


def ints_to_floats(ints: I64, decimals: npt.NDArray[np.int8]) -> F64:
    """The one way integers become values: ``int / 10**d``, exact IEEE division per row."""
    return ints.astype(np.float64) / _POW10[decimals.astype(np.intp)][:, None]


#: A value within this many units in the last place of its decimal reading is stored
#: as that reading plus a small correction (``51.846000000000004`` is 51.846 + 1 ulp).
NEAR_ULPS = 1 << 20


def find_decimals(values: F64) -> tuple[npt.NDArray[np.int8], I64, I64, BoolArr]:
    """Per row the smallest decimal scale that reads the most values to within a few ulps.

    Returns ``(decimals, ints, corrections, near)``: wherever ``near`` is true,
    the bits of ``ints[i] / 10**decimals[i]`` plus ``corrections[i]`` are the
    bits of ``values[i]`` (corrections are mostly zero). Rows already fully
    near at a scale are not tried at larger ones, so integer and one-decimal
    series cost one or two passes.
    """
    rows, n = values.shape
    best_d = np.zeros(rows, dtype=np.int8)
    best_cnt = np.full(rows, -1, dtype=np.int64)
    ints = np.zeros((rows, n), dtype=np.int64)
    corr = np.zeros((rows, n), dtype=np.int64)
    near = np.zeros((rows, n), dtype=np.bool_)
    bits = values.view(np.int64)
    todo = np.arange(rows)
    with np.errstate(invalid="ignore", over="ignore"):
        for d in range(MAX_DECIMALS + 1):
            if todo.size == 0:
                break
            whole = todo.size == rows
            v = values if whole else values[todo]
            scaled = v * _POW10[d] if d else v
            # A cast of NaN or of a value out of int64 range gives garbage; the
            # round-trip distance below rejects it, so no range test is needed.
            cand = np.rint(scaled).astype(np.int64)
            back = cand.astype(np.float64) / _POW10[d] if d else cand.astype(np.float64)
            diff = (bits if whole else bits[todo]) - back.view(np.int64)
            good = (np.abs(diff) < NEAR_ULPS) & np.isfinite(v)
            cnt = good.sum(axis=1)
            better = cnt > best_cnt[todo]
            sel = todo[better]
            best_d[sel] = d
            best_cnt[sel] = cnt[better]
            ints[sel] = cand[better]
            corr[sel] = np.where(good[better], diff[better], 0)
            near[sel] = good[better]
            todo = todo[cnt < n]
    return best_d, ints, corr, near


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


def row_widths(u: U64) -> npt.NDArray[np.int8]:
    """Per row, how many low bytes hold every value of the row (0 when the row is all zero)."""
    top = np.bitwise_or.reduce(u, axis=1) if u.shape[1] else np.zeros(u.shape[0], np.uint64)
    widths = np.zeros(u.shape[0], dtype=np.int8)
    for b in range(8):
        widths += top >= np.uint64(1) << np.uint64(8 * b)
    return widths
