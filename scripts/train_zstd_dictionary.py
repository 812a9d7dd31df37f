"""Train zstd dictionary 1 (``snapcloud/codec/zstd_dict_1.bin``) from synthetic payloads.

Usage: ``.venv/bin/python scripts/train_zstd_dictionary.py [--out PATH]``

The training set is payloads (the bytes zstd compresses) of synthetic data
only, so no benchmark data set is compressed with a dictionary that has seen
it:

- 4 ``snapcloud.synth`` hosts (indexes 900-903, seed 7; the benchmarks use
  seed 0 and indexes from 0), 40 one-minute windows each;
- 48 random-walk single-metric streams with steps of 10 s, 1 min or 5 min,
  0-3 decimals, levels 0-1000, 60-1440 samples per window, 16 windows each.

Each stream is cut as the store cuts it: a keyframe, then deltas against it.
The dictionary is a shipped constant: objects name it by number, so retraining
means a new file and a new number, never replacing this one (see
``snapcloud/codec/_zstd.py``). The script is deterministic for a given
snapcloud, numpy and zstandard version; it prints the SHA-256 to pin.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import zstandard

from snapcloud.codec import _format, _snapshot, _zstd
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.synth import host_snapshots

DICT_SIZE = 16 * 1024
DICT_ID = 0x534E5001  # "SN", 0x50, 1: only for zstd's tools; frames do not carry it


def _payloads(stream: list[ProfileSnapshot]) -> list[bytes]:
    out = []
    for i, snap in enumerate(stream):
        snap = snap.with_seq(i)
        base = None if i == 0 else stream[0].with_seq(0)
        data = _snapshot._encode(snap, base, 3, dictionary=0)
        header, payload = _format.unpack_frame(data)
        out.append(_zstd.decompress(payload, header.decoded_size, version=2, number=0, key=None))
    return out


def _random_walks(
    rng: np.random.Generator, streams: int, windows: int
) -> list[list[ProfileSnapshot]]:
    out = []
    for h in range(streams):
        step = int(rng.choice([10, 60, 300])) * 10**9
        n = int(rng.choice([60, 144, 288, 1440]))
        decimals = int(rng.integers(0, 4))
        level = float(rng.uniform(0, 1000))
        scale = float(rng.uniform(0.01, 5))
        snaps = []
        for w in range(windows):
            ts = 1_700_000_000 * 10**9 + (w * n + np.arange(n, dtype=np.int64)) * step
            values = np.round(np.abs(level + np.cumsum(rng.normal(0, scale, n))), decimals)
            level = float(values[-1])
            snaps.append(
                ProfileSnapshot(
                    f"walk-{h:03d}",
                    [MetricSeries(f"series.{h}", ts, values)],
                    window_start=int(ts[0]),
                    window_end=int(ts[0]) + n * step,
                )
            )
        out.append(snaps)
    return out


def training_set() -> list[bytes]:
    samples: list[bytes] = []
    for h in range(900, 904):
        samples += _payloads(host_snapshots(h, 40, seed=7))
    for stream in _random_walks(np.random.default_rng(20261124), 48, 16):
        samples += _payloads(stream)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).resolve().parents[1] / "snapcloud" / "codec" / "zstd_dict_1.bin"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    samples = training_set()
    zdict = zstandard.train_dictionary(
        DICT_SIZE, samples, level=3, dict_id=DICT_ID, threads=1, k=1024, d=8, steps=0
    )
    data = zdict.as_bytes()
    args.out.write_bytes(data)
    print(f"{len(samples)} payloads, {sum(map(len, samples))} bytes -> {len(data)}-byte dictionary")
    print(f"wrote {args.out}\nsha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
