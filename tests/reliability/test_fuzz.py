"""Bad input, fuzzed: every case is a typed ``SnapcloudError`` or a clear CLI line, never
another exception, a hang, or wrong data.

Extends ``tests/codec/test_corrupt.py`` (keyframe bytes) to deltas, compressed and
archive tier objects, index and tier segments, catalog entries and deletion marks
(mutated, truncated, wrong version, wrong checksum, bombs, JSON of the wrong shape
under a valid checksum), CSV imports with bad rows, names that try to leave their
prefix, and timestamps out of order or repeated. Hypothesis runs derandomized, so a
failure repeats; its falsifying example is the seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud import codec
from snapcloud.backends import FileStore, MemoryStore
from snapcloud.cli import main
from snapcloud.codec import _format, decode_archive, decode_compressed
from snapcloud.errors import (
    BackendError,
    CorruptError,
    OversizedObject,
    SnapcloudError,
    UnknownFormat,
    ValidationError,
    WrongBase,
)
from snapcloud.index import (
    CatalogEntry,
    IndexSegment,
    TierSegment,
    catalog_key,
    data_key,
    segment_key,
)
from snapcloud.layout import mark_key, tier_data_key, tier_index_key
from snapcloud.models import MetricSeries, ProfileSnapshot, canonical_json, validate_host
from snapcloud.retention import Compactor, DeletionMark
from snapcloud.store import HostStream, Repository
from tests.retention.scenario import CONFIG, DAY, HOUR, T0, make_snapshots, write_host

HOST = "gpu-1"
FUZZ = settings(max_examples=120, deadline=None, derandomize=True)

# Cases run by the fuzz loops nested in tests (pytest's hypothesis statistics miss
# those); written to $SNAPCLOUD_FUZZ_COUNTS at the end of the module, for RELIABILITY.md.
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _count_cases() -> Iterator[None]:
    yield
    out = os.environ.get("SNAPCLOUD_FUZZ_COUNTS")
    if out:
        Path(out).write_text(json.dumps(dict(sorted(CASES.items())), indent=1))


LIMIT = 8 << 20  # decoder memory limit used throughout


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    """One good object of every kind, from a store the compactor has worked on."""
    objects = MemoryStore()
    write_host(objects, HOST, 48, window_s=3600, step_s=120)
    Compactor(objects, CONFIG).run(T0 + 20 * HOUR + DAY)
    Compactor(objects, CONFIG).run(T0 + 50 * HOUR)
    Repository(objects, CONFIG).refresh_catalog(HOST, labels={"gpu": "H100"})
    keys = [i.key for i in objects.list("")]

    def first(match: Callable[[str], bool]) -> bytes:
        return objects.get(next(k for k in keys if match(k))).data

    return {
        "keyframe": first(lambda k: k.endswith(".k.snap")),
        "delta": first(lambda k: ".d0" in k),
        "compressed": first(lambda k: k.startswith("compressed/")),
        "archive": first(lambda k: k.startswith("archive/")),
        "segment": first(lambda k: k.startswith(f"index/{HOST}/raw/")),
        "tier segment": first(lambda k: k.startswith(f"index/{HOST}/compressed/")),
        "archive segment": first(lambda k: k.startswith(f"index/{HOST}/archive/")),
        "mark": first(lambda k: k.startswith("marks/deletions/")),
        "catalog": first(lambda k: k.startswith("catalog/")),
    }


def _keyframe_of(corpus: dict[str, bytes]) -> ProfileSnapshot:
    return codec.decode(corpus["keyframe"])


Reader = Callable[[bytes], Any]


def _readers(corpus: dict[str, bytes]) -> dict[str, Reader]:
    base = _keyframe_of(corpus)
    return {
        "keyframe": lambda b: codec.decode(b, max_decoded_size=LIMIT),
        "delta": lambda b: codec.decode(b, base=base, max_decoded_size=LIMIT),
        "compressed": lambda b: decode_compressed(b, max_decoded=LIMIT),
        "archive": lambda b: decode_archive(b, max_decoded=LIMIT),
        "segment": lambda b: IndexSegment.from_bytes(b, key="k"),
        "tier segment": lambda b: TierSegment.from_bytes(b, key="k"),
        "archive segment": lambda b: TierSegment.from_bytes(b, key="k"),
        "mark": lambda b: DeletionMark.from_bytes(b, key="k"),
        "catalog": lambda b: CatalogEntry.from_bytes(b, key="k"),
    }


def _same(a: Any, b: Any) -> bool:
    """Decoded results compared exactly (tier segments hold a private cache: compare dumps)."""
    if isinstance(a, TierSegment):
        return bool(a.model_dump() == b.model_dump())
    return bool(a == b)


def _mutate(data: st.DataObject, good: bytes) -> bytes:
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]), label="op")
        pos = data.draw(st.integers(0, max(0, len(blob) - 1)), label="pos")
        if op == "flip" and blob:
            blob[pos] ^= data.draw(st.integers(1, 255), label="mask")
        elif op == "cut":
            del blob[pos : pos + data.draw(st.integers(1, 16), label="len")]
        elif op == "insert":
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        else:
            del blob[pos:]
    return bytes(blob)


def _expect_typed_or_same(read: Reader, bad: bytes, good: bytes, what: str) -> None:
    try:
        out = read(bad)
    except SnapcloudError as exc:
        assert isinstance(exc, CorruptError), f"{what}: {type(exc).__name__}: {exc}"
        return
    # Only bytes that are the original may decode (never wrong data).
    assert bad == good or _same(out, read(good)), f"{what}: changed bytes decoded: {bad!r}"


# --------------------------------------------------------------------------- object bytes

KINDS = [
    "keyframe",
    "delta",
    "compressed",
    "archive",
    "segment",
    "tier segment",
    "archive segment",
    "mark",
    "catalog",
]


@pytest.mark.parametrize("kind", KINDS)
def test_mutated_objects_give_corrupt_error_or_the_original(
    corpus: dict[str, bytes], kind: str
) -> None:
    read = _readers(corpus)[kind]
    good = corpus[kind]
    read(good)  # the original is readable

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        CASES[f"mutated {kind}"] += 1
        _expect_typed_or_same(read, _mutate(data, good), good, kind)

    run()


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_at_many_lengths(corpus: dict[str, bytes], kind: str) -> None:
    read = _readers(corpus)[kind]
    good = corpus[kind]
    for n in sorted({*range(0, 64), *range(0, len(good), max(1, len(good) // 97))}):
        if n < len(good):
            with pytest.raises(CorruptError):
                read(good[:n])
    for blob in (b"", b"\0" * 64, b"PK\x03\x04", b"null", b"[]", b"{}", bytes(range(256))):
        with pytest.raises(CorruptError):
            read(blob)


def test_delta_against_a_wrong_base(corpus: dict[str, bytes]) -> None:
    base = _keyframe_of(corpus)
    other = base.with_metrics([m.slice_time(None, int(m.timestamps[-1])) for m in base.metrics])
    for wrong in (None, other, base.with_seq(base.seq + 1)):
        with pytest.raises(WrongBase):
            codec.decode(corpus["delta"], base=wrong)
    with pytest.raises(UnknownFormat):
        decode_compressed(corpus["archive"])  # an archive object read as compressed
    with pytest.raises(UnknownFormat):
        decode_archive(corpus["compressed"])


# --------------------------------------------------------------------------- tier frames


def _tier_parts(blob: bytes) -> tuple[bytes, list[int], bytes, bytes]:
    """(16-byte head, frame sizes, zstd table of contents, frames) of a tier object."""
    toc_size, count = struct.unpack_from("<II", blob, 8)
    sizes = list(struct.unpack_from(f"<{count}Q", blob, 16))
    start = 16 + 8 * count
    return blob[:16], sizes, blob[start : start + toc_size], blob[start + toc_size : -4]


def _tier_pack(head: bytes, sizes: list[int], toc_z: bytes, frames: bytes) -> bytes:
    head = head[:8] + struct.pack("<II", len(toc_z), len(sizes))
    body = head + struct.pack(f"<{len(sizes)}Q", *sizes) + toc_z + frames
    return body + struct.pack("<I", crc32c.crc32c(body))


def _with_toc(blob: bytes, toc: Any, *, raw: bytes | None = None) -> bytes:
    head, sizes, _, frames = _tier_parts(blob)
    text = raw if raw is not None else json.dumps(toc).encode()
    return _tier_pack(head, sizes, zstandard.ZstdCompressor().compress(text), frames)


@pytest.mark.parametrize("kind", ["compressed", "archive"])
def test_tier_object_bombs_and_versions(corpus: dict[str, bytes], kind: str) -> None:
    read = _readers(corpus)[kind]
    good = corpus[kind]
    head, sizes, toc_z, frames = _tier_parts(good)
    # A table of contents declaring a huge decoded size, and a real zstd bomb.
    huge = bytearray(toc_z)
    bomb = zstandard.ZstdCompressor().compress(b" " * (64 << 20))
    for z in (bomb, zstandard.ZstdCompressor(write_content_size=False).compress(b"{}")):
        with pytest.raises(OversizedObject):
            read(_tier_pack(head, sizes, z, frames))
    del huge[-1]
    with pytest.raises(CorruptError):
        read(_tier_pack(head, sizes, bytes(huge), frames))
    # Version, tier code, flags, and a frame count past the limit, under a valid CRC.
    for offset, fmt, value in ((4, "<B", 2), (5, "<B", 7), (6, "<H", 1), (12, "<I", 1 << 20)):
        bad = bytearray(good)
        struct.pack_into(fmt, bad, offset, value)
        body = bytes(bad[:-4])
        with pytest.raises(CorruptError):
            read(body + struct.pack("<I", crc32c.crc32c(body)))
    # A frame inside that is itself a bomb: its header declares more than the limit.
    header, payload = _format.unpack_frame(frames[: sizes[0]])
    frame_bad = _format.pack_frame(dataclasses.replace(header, decoded_size=1 << 40), payload)
    with pytest.raises(OversizedObject):
        read(_tier_pack(head, [len(frame_bad), *sizes[1:]], toc_z, frame_bad + frames[sizes[0] :]))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("kind", ["compressed", "archive"])
def test_tier_table_of_contents_of_the_wrong_shape(corpus: dict[str, bytes], kind: str) -> None:
    """A well-framed object (valid CRC) around a table of contents with a field replaced."""
    read = _readers(corpus)[kind]
    good = corpus[kind]
    toc = json.loads(zstandard.ZstdDecompressor().decompress(_tier_parts(good)[2]))
    original = read(good)

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        CASES[f"{kind} table of contents of the wrong shape"] += 1
        bad = json.loads(json.dumps(toc))
        path = []
        node = bad
        while isinstance(node, (dict, list)) and node and data.draw(st.booleans(), label="deeper"):
            keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
            step = data.draw(st.sampled_from(keys), label="step")
            path.append(step)
            if not isinstance(node[step], (dict, list)):
                break
            node = node[step]
        new = data.draw(JSON, label="value")
        if not path:
            bad = new
        else:
            holder = bad
            for step in path[:-1]:
                holder = holder[step]
            holder[path[-1]] = new
        try:
            out = read(_with_toc(good, bad))
        except SnapcloudError as exc:
            assert isinstance(exc, CorruptError), f"{type(exc).__name__}: {exc}"
            return
        # Accepted: every snapshot returned is one the object holds, bit for bit; a
        # missing one is found by the reader, which checks the seq and checksum it wants.
        if kind == "compressed":
            assert set(out) <= set(original), f"path {path} = {new!r}"
            assert all(out[q] == original[q] for q in out), f"path {path} = {new!r}"
        else:
            assert [s for _, s in out] == [s for _, s in original], f"path {path} = {new!r}"

    run()


def test_archive_table_is_trusted(corpus: dict[str, bytes]) -> None:
    good = corpus["archive"]
    toc = json.loads(zstandard.ZstdDecompressor().decompress(_tier_parts(good)[2]))
    toc["frames"][0]["resolution_ns"] = 1
    try:
        out = decode_archive(_with_toc(good, toc))
    except CorruptError:
        return
    assert out[0][0] == decode_archive(good)[0][0]


def test_compressed_table_without_members(corpus: dict[str, bytes]) -> None:
    good = corpus["compressed"]
    toc = json.loads(zstandard.ZstdDecompressor().decompress(_tier_parts(good)[2]))
    toc["members"] = []
    with pytest.raises(CorruptError):
        decode_compressed(_with_toc(good, toc))


@pytest.mark.parametrize("kind", ["compressed", "archive"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000, id="deep"),
        pytest.param(b'{"tier":' + b"9" * 5000 + b"}", id="longint"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"NaN", id="nan"),
        pytest.param(b'{"tier":"compressed","host":"h","table":[],"members":[[]]}', id="shape"),
    ],
)
def test_tier_table_of_contents_hostile_json(
    corpus: dict[str, bytes], kind: str, raw: bytes
) -> None:
    with pytest.raises(CorruptError):
        _readers(corpus)[kind](_with_toc(corpus[kind], None, raw=raw))


# --------------------------------------------------------------------------- checked JSON


def _checked(body: dict[str, Any]) -> bytes:
    """``body`` with a valid ``crc32c`` (so the shape check is what is tested)."""
    body = dict(body)
    body.pop("crc32c", None)
    body["crc32c"] = crc32c.crc32c(canonical_json(body))
    return json.dumps(body, separators=(",", ":")).encode()


JSON_KINDS = ["segment", "tier segment", "archive segment", "mark", "catalog"]


@pytest.mark.parametrize("kind", JSON_KINDS)
def test_checked_json_of_the_wrong_shape(corpus: dict[str, bytes], kind: str) -> None:
    read = _readers(corpus)[kind]
    body = json.loads(corpus[kind])
    del body["crc32c"]

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        CASES[f"checked JSON {kind} of the wrong shape"] += 1
        bad = json.loads(json.dumps(body))
        field = data.draw(st.sampled_from(sorted(bad)), label="field")
        value = bad[field]
        if isinstance(value, list) and value and data.draw(st.booleans(), label="inner"):
            i = data.draw(st.integers(0, len(value) - 1), label="index")
            value[i] = data.draw(JSON, label="value")
        elif data.draw(st.booleans(), label="drop"):
            del bad[field]
        else:
            bad[field] = data.draw(JSON, label="value")
        try:
            out = read(_checked(bad))
        except SnapcloudError as exc:
            assert isinstance(exc, CorruptError), f"{type(exc).__name__}: {exc}"
            return
        # Accepted only when it still is a model of the right shape: it must round-trip.
        assert read(out.to_bytes()) is not None

    run()


@pytest.mark.parametrize("kind", JSON_KINDS)
def test_checked_json_versions_checksums_and_hostile_text(
    corpus: dict[str, bytes], kind: str
) -> None:
    read = _readers(corpus)[kind]
    body = json.loads(corpus[kind])
    for version in (0, 2, "1", None, 1.5, [1]):
        with pytest.raises(UnknownFormat):
            read(_checked({**body, "version": version}))
    for crc in (body["crc32c"] ^ 1, "x", None, -1):
        with pytest.raises(CorruptError):
            read(json.dumps({**body, "crc32c": crc}, separators=(",", ":")).encode())
    for raw in (
        b"[" * 100_000,
        b'{"version":1,"crc32c":' + b"7" * 5000 + b"}",
        b'{"version":1,"crc32c":1,"x":NaN}',
        b'{"version":1,"crc32c":1,"x":Infinity}',
        _checked({**body, "deep": json.loads("[" * 50 + "]" * 50)}),
        b"\xff\xfe{}",
        corpus[kind] + b"x",
    ):
        with pytest.raises(CorruptError):
            read(raw)


def test_index_entries_cannot_name_another_hosts_objects(corpus: dict[str, bytes]) -> None:
    """A segment (valid checksum) naming keys outside its own group and host is corrupt:
    the compactor deletes what an index names, so this keeps one host off another's data."""
    body = json.loads(corpus["segment"])
    del body["crc32c"]
    entry = body["entries"][1]
    good_key = entry["key"]
    for key in (
        good_key.replace(f"raw/{HOST}/", "raw/gpu-2/"),
        good_key.replace("raw/", "compressed/"),
        f"raw/{HOST}/../gpu-2/2026/01/01/{entry['seq']:012d}.d{entry['base']:012d}.snap",
        "catalog/gpu-2.json",
        good_key.replace(f"{entry['seq']:012d}", f"{entry['seq'] + 100:012d}"),
        good_key.replace(f".d{entry['base']:012d}", ".k"),
    ):
        bad = json.loads(json.dumps(body))
        bad["entries"][1]["key"] = key
        with pytest.raises(CorruptError, match="another group"):
            IndexSegment.from_bytes(_checked(bad), key="k")
    bad = json.loads(json.dumps(body))
    bad["entries"][1]["metrics"] = [-1]
    with pytest.raises(CorruptError):
        IndexSegment.from_bytes(_checked(bad), key="k")


def test_corrupt_objects_in_a_store_surface_as_typed_errors(corpus: dict[str, bytes]) -> None:
    """Through the stream and the catalog, not only the decoders."""
    objects = MemoryStore()
    snaps = make_snapshots(HOST, 6, window_s=600, step_s=60)
    stream = HostStream(objects, HOST, CONFIG)
    for s in snaps:
        stream.append(s)
    repo = Repository(objects, CONFIG)
    repo.refresh_catalog(HOST)
    seg = segment_key(HOST, 0)
    other = json.loads(objects.get(segment_key(HOST, 4)).data)
    del other["crc32c"]
    cases = {
        seg: [b"", b"{}", _checked(other)],  # the second group's segment under the first's key
        catalog_key(HOST): [b"[", _checked({"version": 1, "host": "gpu-2"})],
        stream.entry(1).key: [corpus["delta"], corpus["keyframe"][:-1]],
    }
    for key, blobs in cases.items():
        good = objects.get(key).data
        for blob in blobs:
            objects.put(key, blob)
            with pytest.raises(CorruptError):
                fresh = Repository(objects, CONFIG)
                fresh.catalog().get(HOST)
                fresh.stream(HOST).query_all()
            objects.put(key, good)
    assert Repository(objects, CONFIG).stream(HOST).query_all() == [
        s.with_seq(i) for i, s in enumerate(snaps)
    ]


# --------------------------------------------------------------------------- CSV imports

BAD_CELLS = {
    "value": ["abc", "1.2.3", "0x10", "--5", "1e", "1;5", "\x00", "１", "1e99999x"],
    "time": ["x", "2026-13-01", "1.5.5", "", "9" * 30],
}


def _good_csv(rows: int, t0: int = T0) -> list[str]:
    return ["timestamp,util,mem"] + [f"{t0 + i * 10**9},{i * 0.5},{100 - i}" for i in range(rows)]


def _store_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.data())
def test_bad_csv_rows_give_one_line_exit_2_and_change_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    root = tmp / "store"
    url = f"file://{root}"
    good = tmp / "good.csv"
    good.write_text("\n".join(_good_csv(20)) + "\n")
    assert main(["import", str(good), "--host", HOST, "--store", url]) == 0
    before = _store_bytes(root)
    lines = _good_csv(30, t0=T0 + 100 * 10**9)
    row = data.draw(st.integers(1, len(lines) - 1), label="row")
    cells = lines[row].split(",")
    # (a row whose time steps back is no error: every row is kept, architecture D2)
    how = data.draw(st.sampled_from(["value", "time", "width"]), label="how")
    if how == "value":
        cells[data.draw(st.integers(1, 2))] = data.draw(st.sampled_from(BAD_CELLS["value"]))
    elif how == "time":
        cells[0] = data.draw(st.sampled_from(BAD_CELLS["time"]))
    else:
        cells = [*cells, "1"] if data.draw(st.booleans()) else cells[:-1]
    lines[row] = ",".join(cells)
    bad = tmp / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    code, err = _run_cli(["import", str(bad), "--host", HOST, "--store", url])
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("snapcloud: error: "), err
    assert f"{bad}:{row + 1}:" in err, err
    assert _store_bytes(root) == before


def _run_cli(argv: list[str]) -> tuple[int, str]:
    """Run the CLI in-process, capturing stderr at the file-descriptor level."""
    import tempfile

    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            from snapcloud.cli._app import err

            previous = err._file  # None: rich follows sys.stderr
            err.file = os.fdopen(os.dup(2), "w")
            try:
                code = main(argv)
            finally:
                err.file.flush()
                err.file.close()
                err._file = previous  # later tests must not write to the closed file
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        return code, f.read().decode()


# --------------------------------------------------------------------------- names

HOSTILE = [
    "../x",
    "..",
    ".",
    "a/b",
    "/abs",
    "a\\b",
    "a%2fb",
    "%2e%2e",
    "a\x00b",
    "a\nb",
    "ｈｏｓｔ",  # fullwidth
    "a\u2215b",  # division slash
    "a\u2044b",  # fraction slash
    "a\uff0fb",  # fullwidth solidus
    "ho\u0301st",  # combining accent
    "x" * 129,
    "x" * 5000,
    "",
    " a",
    "-a",
    "a..b",
    "raw/../../etc",
]


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:20])
def test_hostile_host_names_are_refused_everywhere(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root" / "store"
    root.mkdir(parents=True)
    outside = tmp_path / "root"
    with pytest.raises(ValidationError):
        validate_host(name)
    with pytest.raises(ValidationError):
        ProfileSnapshot(name, [])
    objects = FileStore(root)
    with pytest.raises(ValidationError):
        Repository(objects).stream(name, create=True)
    with pytest.raises(ValidationError):
        HostStream(objects, name)
    with pytest.raises(ValidationError):
        catalog_key(name)
    # Key functions do not validate; the store refuses whatever would leave its root.
    for key in (
        data_key(name, 0, 0, T0, 0),
        segment_key(name, 0),
        tier_data_key("compressed", name, 0, 3, T0),
        tier_index_key("archive", name, 0, 3, T0, T0 + 1),
        mark_key(name, "raw", 0, 3),
    ):
        try:
            objects.put(key, b"x")
        except ValidationError:
            continue
        written = root / key
        assert written.resolve().is_relative_to(root.resolve()), key
    assert {p.name for p in outside.iterdir()} == {"store"}
    code, err = _run_cli(["ls", "--host", name, "--store", f"file://{root}"])
    assert code == 2 and err.count("\n") == 1, err


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:20])
def test_hostile_object_keys_stay_in_the_file_store(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root" / "store"
    root.mkdir(parents=True)
    objects = FileStore(root)
    for key in (name, f"raw/{name}", f"raw/{name}/x", f"{name}/../../escape"):
        try:
            objects.put(key, b"x")
        except (ValidationError, BackendError):  # BackendError: 'a/b' then 'a/b/x'
            continue
        for p in root.rglob("*"):
            assert p.resolve().is_relative_to(root.resolve()), p
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["store"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "ｍｅｍ", "m\x00", "", "x" * 201, "a\u2215b", ".."]
)
def test_hostile_metric_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationError):
        MetricSeries(name, np.array([1], np.int64), np.array([1.0]))
    csv = tmp_path / "m.csv"
    csv.write_text(f"timestamp,{name},ok\n{T0},1,2\n{T0 + 1},3,4\n")
    code, err = _run_cli(["import", str(csv), "--host", HOST, "--store", f"file://{tmp_path}/s"])
    assert code == 2 and err.count("\n") == 1 and f"{csv}:1:" in err, err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("*.snap"))


# --------------------------------------------------------------------------- timestamps


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_timestamps_out_of_order_are_refused(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 50), label="n")
    ts = np.sort(
        np.array(data.draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n)))
    )
    i = data.draw(st.integers(1, n - 1), label="swap at")
    if ts[i - 1] == ts[i]:
        ts[i - 1] += 1
        if ts[i - 1] <= ts[i]:
            ts[i] = ts[i - 1] - 1
    ts[i - 1], ts[i] = max(ts[i - 1], ts[i]), min(ts[i - 1], ts[i])
    assert ts[i - 1] > ts[i]
    with pytest.raises(ValidationError, match="out of order"):
        MetricSeries("m", ts.astype(np.int64), np.zeros(n))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.data())
def test_repeated_timestamps_are_kept_bit_exact(data: st.DataObject) -> None:
    """Through the raw tier (keyframe and delta) and the compressed tier."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    snaps = []
    for w in range(5):
        n = int(rng.integers(1, 60))
        steps = rng.choice([0, 0, 1, 10**9], n)  # many repeats
        ts = T0 + w * 10**12 + np.cumsum(steps).astype(np.int64)
        bits = rng.integers(0, 2**63, n, dtype=np.int64)
        bits[rng.integers(0, n, max(1, n // 4))] = 0x7FF8000000000001  # NaN payloads
        values = bits.view(np.float64).copy()
        snaps.append(ProfileSnapshot(HOST, [MetricSeries("m", ts, values)], seq=w))
    objects = MemoryStore()
    stream = HostStream(objects, HOST, CONFIG)
    for s in snaps:
        stream.append(s)
    fresh = HostStream(objects, HOST, CONFIG)
    for s in snaps:
        got = fresh.get(s.seq).metric("m")
        assert got.timestamps.tobytes() == s.metric("m").timestamps.tobytes()
        assert got.values.tobytes() == s.metric("m").values.tobytes()
    from snapcloud.codec import encode_compressed

    blob = encode_compressed(HOST, snaps[:4], level=3, max_frame_bytes=1 << 20)
    back = decode_compressed(blob)
    for s in snaps[:4]:
        assert back[s.seq].metric("m").values.tobytes() == s.metric("m").values.tobytes()
        assert back[s.seq].metric("m").timestamps.tobytes() == s.metric("m").timestamps.tobytes()
