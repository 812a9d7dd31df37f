"""``verify`` finds any changed byte in any stored object of a host, and names it.

One small store holds every kind of object a host has: raw keyframes and deltas,
compressed and archive tier objects, raw and tier index segments, deletion marks
and the catalog entry (24 + 24 one-hour windows, compacted twice). For the
smallest object of each kind every byte position is changed in turn; for every
object a hypothesis-drawn set of (position, xor mask) pairs is; each time
``Repository.verify`` must report that very key as a problem, and the store is
restored before the next change. Writer leases carry no checksum and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.backends import FileStore, MemoryStore, ObjectStore
from snapcloud.cli import main
from snapcloud.retention import Compactor
from snapcloud.store import Repository
from tests.retention.scenario import CONFIG, DAY, HOUR, T0, write_host

HOST = "gpu-1"
KINDS = {
    "keyframe": lambda k: k.startswith("raw/") and k.endswith(".k.snap"),
    "delta": lambda k: k.startswith("raw/") and ".d" in k,
    "compressed": lambda k: k.startswith("compressed/"),
    "archive": lambda k: k.startswith("archive/"),
    "raw segment": lambda k: k.startswith(f"index/{HOST}/raw/"),
    "compressed segment": lambda k: k.startswith(f"index/{HOST}/compressed/"),
    "archive segment": lambda k: k.startswith(f"index/{HOST}/archive/"),
    "mark": lambda k: k.startswith("marks/deletions/"),
    "catalog": lambda k: k.startswith("catalog/"),
}


def build(objects: ObjectStore) -> Repository:
    """48 windows of 30 samples per metric: day 0 archived (its compressed items marked),
    day 1 compressed but its last group, two raw groups marked, a catalog entry."""
    write_host(objects, HOST, 48, window_s=3600, step_s=120)
    Compactor(objects, CONFIG).run(T0 + 20 * HOUR + DAY)
    Compactor(objects, CONFIG).run(T0 + 50 * HOUR)
    repo = Repository(objects, CONFIG)
    repo.refresh_catalog(HOST, labels={"gpu": "H100", "site": "Zürich"})
    return repo


@pytest.fixture(scope="module")
def store() -> Iterator[tuple[MemoryStore, Repository, dict[str, bytes]]]:
    objects = MemoryStore()
    repo = build(objects)
    blobs = {i.key: objects.get(i.key).data for i in objects.list("") if "/leases/" not in i.key}
    yield objects, repo, blobs


def _problems(repo: Repository) -> dict[str, str]:
    (report,) = repo.verify(HOST)
    return {p.key: p.what for p in report.problems}


def _check_flip(
    objects: MemoryStore, repo: Repository, key: str, data: bytes, pos: int, mask: int
) -> None:
    bad = bytearray(data)
    bad[pos] ^= mask
    objects.put(key, bytes(bad))
    try:
        found = _problems(repo)
    finally:
        objects.put(key, data)
    assert key in found, f"byte {pos} ^ {mask:#04x} of {key} not reported; problems: {found}"


def test_the_store_holds_every_kind_and_verifies_clean(
    store: tuple[MemoryStore, Repository, dict[str, bytes]],
) -> None:
    _, repo, blobs = store
    for kind, match in KINDS.items():
        assert any(match(k) for k in blobs), f"no {kind} object in the scenario"
    (report,) = repo.verify(HOST)
    assert report.ok, report.problems
    assert report.orphans == []
    # every data object, mark and the catalog entry is read and counted (segments: entries)
    assert report.objects == len([k for k in blobs if not k.startswith("index/")])


@pytest.mark.parametrize("kind", ["delta", "mark"])
def test_every_byte_of_the_smallest_object_of_a_kind(
    store: tuple[MemoryStore, Repository, dict[str, bytes]], kind: str
) -> None:
    objects, repo, blobs = store
    key = min((k for k in blobs if KINDS[kind](k)), key=lambda k: len(blobs[k]))
    data = blobs[key]
    for pos in range(len(data)):
        _check_flip(objects, repo, key, data, pos, 0x01 << (pos % 8))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.data())
def test_sampled_bytes_of_every_object(
    store: tuple[MemoryStore, Repository, dict[str, bytes]], data: st.DataObject
) -> None:
    objects, repo, blobs = store
    key = data.draw(st.sampled_from(sorted(blobs)), label="key")
    blob = blobs[key]
    pos = data.draw(st.integers(0, len(blob) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    _check_flip(objects, repo, key, blob, pos, mask)


def test_changes_that_parse_the_same_are_found(
    store: tuple[MemoryStore, Repository, dict[str, bytes]],
) -> None:
    """``\\u00fc`` -> ``\\u00FC`` and ``1`` -> ``1.0`` leave the parsed JSON (and its CRC)
    alike; the written-form check still finds them."""
    objects, repo, blobs = store
    key = f"catalog/{HOST}.json"
    data = blobs[key]
    assert b"\\u00fc" in data
    for bad in (
        data.replace(b"\\u00fc", b"\\u00FC"),
        data.replace(b'"version":1', b'"version":1.0'),
        data.replace(b'"version":1', b'"version": 1'),
        data + b"\n",
    ):
        assert bad != data
        objects.put(key, bad)
        try:
            assert key in _problems(repo)
        finally:
            objects.put(key, data)


def test_truncated_and_missing_objects_are_reported(
    store: tuple[MemoryStore, Repository, dict[str, bytes]],
) -> None:
    objects, repo, blobs = store
    for key in sorted(blobs):
        data = blobs[key]
        objects.put(key, data[: len(data) // 2])
        try:
            assert key in _problems(repo), key
        finally:
            objects.put(key, data)
    # A tier object that is gone: its tier segment is the problem, by key.
    obj = next(k for k in sorted(blobs) if k.startswith("compressed/"))
    objects.delete(obj)
    try:
        found = _problems(repo)
        assert any(obj in what for what in found.values()), found
    finally:
        objects.put(obj, blobs[obj])
    assert _problems(repo) == {}


def test_cli_verify_names_the_changed_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = FileStore(tmp_path / "store")
    build(objects)
    url = f"file://{tmp_path / 'store'}"
    assert main(["verify", "--store", url, "--json"]) == 0
    capsys.readouterr()
    changed = []
    for kind in ("archive", "compressed segment", "keyframe", "mark"):
        key = next(i.key for i in objects.list("") if KINDS[kind](i.key))
        path = tmp_path / "store" / key
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x20
        path.write_bytes(bytes(blob))
        changed.append(key)
    assert main(["verify", "--store", url, "--json"]) == 1
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["host"] == HOST and not doc["ok"]
    assert sorted({p["key"] for p in doc["problems"]} & set(changed)) == sorted(changed)
    assert main(["verify", "--store", url]) == 1
    text = capsys.readouterr().out
    assert all(k in text for k in changed), text
