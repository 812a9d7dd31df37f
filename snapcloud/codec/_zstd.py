"""zstd for snapshot payloads: the built-in dictionary, per-thread contexts.

Most objects are small (a one-minute window of a host, a day of a 5-minute
series), and zstd without history spends a good part of such an object on
learning its statistics: Huffman and FSE tables, the meta JSON's keys. A
*dictionary* gives it that history up front. Dictionary 1 ships in the
package (``zstd_dict_1.bin``), was trained by ``scripts/train_zstd_dictionary.py``
on payloads of synthetic data only (``snapcloud.synth`` hosts and random-walk
series, none of the benchmark's data), and can never change: objects name it
by number, and its SHA-256 is pinned here. A new dictionary gets a new number.

Version-2 payloads are magicless zstd frames without content size, checksum
or dictionary id: the snapcloud frame already holds the decoded size, two
checksums and the dictionary number.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources

import zstandard

from snapcloud.errors import CorruptError, UnknownFormat

#: The dictionary new objects are compressed with.
CURRENT_DICTIONARY = 1
_DICT_FILES = {1: "zstd_dict_1.bin"}
_DICT_SHA256 = {1: "8e554d204f8c059d66e128ed55efd154db0d1445ac8808f603ddea8aec1ced57"}

_local = threading.local()
_verified: dict[int, bytes] = {}
_cdicts: dict[tuple[int, int], zstandard.ZstdCompressionDict] = {}
_dicts_lock = threading.Lock()


def _dictionary_bytes(number: int) -> bytes:
    """Dictionary ``number``'s bytes, read once and checked against the pinned hash."""
    with _dicts_lock:
        if number not in _verified:
            if number not in _DICT_FILES:
                raise UnknownFormat(f"unknown zstd dictionary {number}")
            files = resources.files("snapcloud.codec")
            data = files.joinpath(_DICT_FILES[number]).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest != _DICT_SHA256[number]:
                raise CorruptError(
                    f"zstd dictionary {number} of this installation is damaged "
                    f"(sha256 {digest}, expected {_DICT_SHA256[number]})"
                )
            _verified[number] = data
        return _verified[number]


def dictionary(number: int) -> zstandard.ZstdCompressionDict | None:
    """A new dictionary object for dictionary ``number`` (0: none).

    python-zstandard prepares a dictionary's tables inside the object on first
    use, so objects are not shared between threads: each thread's context gets
    its own (the bytes are read and checked once).
    """
    if number == 0:
        return None
    return zstandard.ZstdCompressionDict(
        _dictionary_bytes(number), dict_type=zstandard.DICT_TYPE_FULLDICT
    )


def _compression_dictionary(
    number: int, params: zstandard.ZstdCompressionParameters, level: int
) -> zstandard.ZstdCompressionDict:
    """One dictionary object per (number, level), precomputed once and then only read.

    ``precompute_compress`` replaces a dictionary's prepared tables; calling it
    again while another thread compresses with them crashes, so each level gets
    its own object and every thread's compressor shares it read-only.
    """
    data = _dictionary_bytes(number)
    with _dicts_lock:
        zdict = _cdicts.get((number, level))
        if zdict is None:
            zdict = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
            zdict.precompute_compress(compression_params=params)
            _cdicts[(number, level)] = zdict
        return zdict


def _params(level: int) -> zstandard.ZstdCompressionParameters:
    return zstandard.ZstdCompressionParameters.from_level(
        level,
        format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        write_content_size=False,
        write_checksum=False,
        write_dict_id=False,
    )


def compress(payload: bytes, level: int, number: int = CURRENT_DICTIONARY) -> bytes:
    """A version-2 payload frame: magicless, with dictionary ``number`` (0: none)."""
    cache: dict[tuple[int, int], zstandard.ZstdCompressor]
    cache = _local.__dict__.setdefault("cctx", {})
    cctx = cache.get((level, number))
    if cctx is None:
        params = _params(level)
        if number == 0:
            cctx = zstandard.ZstdCompressor(compression_params=params)
        else:
            zdict = _compression_dictionary(number, params, level)
            cctx = zstandard.ZstdCompressor(dict_data=zdict, compression_params=params)
        cache[(level, number)] = cctx
    return cctx.compress(payload)


def _decompressor(version: int, number: int) -> zstandard.ZstdDecompressor:
    cache: dict[tuple[int, int], zstandard.ZstdDecompressor]
    cache = _local.__dict__.setdefault("dctx", {})
    dctx = cache.get((version, number))
    if dctx is None:
        if version == 1:
            dctx = zstandard.ZstdDecompressor()
        else:
            zdict = dictionary(number)
            fmt = zstandard.FORMAT_ZSTD1_MAGICLESS
            dctx = (
                zstandard.ZstdDecompressor(format=fmt)
                if zdict is None
                else zstandard.ZstdDecompressor(dict_data=zdict, format=fmt)
            )
        cache[(version, number)] = dctx
    return dctx


def decompress(
    payload: memoryview | bytes, size: int, *, version: int, number: int, key: str | None
) -> bytes:
    """The ``size`` bytes a payload frame holds; ``CorruptError`` for anything else.

    ``size`` comes from the snapcloud header and was checked against the decode
    limit before this is called; zstd is never asked for more.
    """
    try:
        if version == 1:
            declared = zstandard.frame_content_size(payload)
            if declared != size:
                raise CorruptError(
                    f"zstd frame declares {declared} bytes, header {size} at {key}", key=key
                )
        raw = _decompressor(version, number).decompress(payload, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise CorruptError(f"zstd payload does not decompress at {key}: {exc}", key=key) from None
    if len(raw) != size:
        raise CorruptError(f"payload is {len(raw)} bytes, header says {size} at {key}", key=key)
    return raw
