"""Hash every object the benchmark data sets store, to prove a change keeps bytes identical.

Run:  .venv/bin/python benchmarks/hash_objects.py [--out hashes.txt]
      python benchmarks/hash_objects.py --out before.txt   # on the old commit
      python benchmarks/hash_objects.py --out after.txt    # on the new one
      cmp before.txt after.txt

Builds, into in-memory stores (the compactor runs at given times; appends and imports
take their times from the data, so two runs store the same bytes):

1. ``fleet``: ``snapcloud.synth`` (the storage and query benchmarks' data), 3 hosts x
   130 one-minute windows appended through ``Repository.stream``, so keyframes,
   deltas, index segments of a sealed and an open group, and catalog entries; a
   sealed group gets a range hint through the importer's path (an import of
   windows the stream already holds, which stores nothing new);
2. ``tiers``: the same fleet through the compactor (the retention benchmark's path)
   as of two days after (raw -> compressed, then again: nothing to do), three days
   after (the superseded raw objects deleted), 400 days after (-> archive) twice, and
   401 days after (marks due, hard deletes); every object after each run;
3. ``import``: the importer's fixtures of nvidia-smi, dmon and dcgmi output
   (``tests/importers/data``) imported into one host, then imported again.

Prints one line per object: data set, key, size, sha256; the last line is the sha256 of
all lines. Leases (their holder names this process) are left out and listed
separately by key only.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapcloud import synth
from snapcloud.backends import MemoryStore
from snapcloud.importers import append_windows, import_files
from snapcloud.models import SnapshotConfig
from snapcloud.retention import DAY_NS, Compactor, RetentionPolicy
from snapcloud.store import Repository

ROOT = Path(__file__).resolve().parents[1]
NS = 10**9
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
HOSTS = 3
WINDOWS = 130
FIXTURES = ROOT / "tests" / "importers" / "data"


def _fleet(objects: MemoryStore) -> None:
    repo = Repository(objects, SnapshotConfig())
    for snap in synth.fleet_snapshots(HOSTS, WINDOWS, start_ns=T0):
        repo.stream(snap.host, create=True).append(snap)
    for h in range(HOSTS):
        again = synth.host_snapshots(h, 60, start_ns=T0)
        append_windows(repo.stream(again[0].host), again)


def _compact(objects: MemoryStore, leases: list[str]) -> list[str]:
    """Each run's resulting objects (the compressed tier, marks, the archive, deletes)."""
    policy = RetentionPolicy(
        raw_max_age_ns=DAY_NS,
        compressed_max_age_ns=30 * DAY_NS,
        archive_max_age_ns=3650 * DAY_NS,
    )
    end = T0 + WINDOWS * 60 * NS
    lines = []
    days = (2, 2, 3, 400, 400, 401)
    for run, day in enumerate(days):
        now = end + day * DAY_NS
        clock = (lambda t: lambda: t / NS)(now)
        Compactor(objects, policy=policy, owner="hash-objects", clock=clock).run(now_ns=now)
        lines += _lines(f"tiers{run}", objects, leases)
    return lines


def _import(objects: MemoryStore) -> None:
    repo = Repository(objects, SnapshotConfig())
    files = {
        "nvsmi-query": ["nvidia_smi_query_2gpu.csv"],
        "nvsmi-dmon": ["nvidia_smi_dmon.txt"],
        "dcgmi": ["dcgmi_dmon_ts.txt"],
    }
    for host, names in files.items():
        paths = [FIXTURES / n for n in names]
        for _ in range(2):
            snaps = import_files(host, paths, window_ns=60 * NS)
            append_windows(repo.stream(host, create=True), snaps)


def _lines(name: str, objects: MemoryStore, leases: list[str]) -> list[str]:
    out = []
    for key in sorted(info.key for info in objects.list("")):
        if "/leases/" in key or key.endswith(".lease"):
            leases.append(f"{name}\t{key}")
            continue
        data = objects.get(key).data
        out.append(f"{name}\t{key}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the lines here as well")
    args = ap.parse_args()
    fleet, imported = MemoryStore(), MemoryStore()
    _fleet(fleet)
    leases: list[str] = []
    lines = _lines("fleet", fleet, leases)
    lines += _compact(fleet, leases)
    _import(imported)
    lines += _lines("import", imported, leases)
    total = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    text = "\n".join([*lines, *(f"lease\t{k}" for k in leases), f"total\t{len(lines)}\t{total}"])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
