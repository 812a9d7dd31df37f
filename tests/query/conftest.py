"""A small GPU fleet on the moto S3 server, written concurrently, with its raw data kept
in memory as the reference every query answer is checked against."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import numpy as np
import pytest

from snapcloud.backends import S3Store
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig
from snapcloud.store import HostStream, Repository
from snapcloud.synth import host_snapshots

HOSTS = 6
WINDOWS = 12
CONFIG = SnapshotConfig(keyframe_interval=5)
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z, the synth default start
MIN = 60 * 10**9
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"


def host_labels(i: int) -> dict[str, str]:
    return {
        "cluster": "synthetic",
        "gpu.count": "8",
        "gpu.model": H100 if i % 2 == 0 else A100,
        "rack": f"r{i // 3}",
    }


def _edit(i: int, snaps: list[ProfileSnapshot]) -> list[ProfileSnapshot]:
    """Give each host its labels; put NaNs into host 1's GPU 0 power and a counter reset
    into host 2's disk.read_bytes, so aggregations meet both."""
    out = []
    reset_from = float(snaps[6].metric("disk.read_bytes").values[0]) - 1000.0
    for w, s in enumerate(snaps):
        metrics = []
        for m in s.metrics:
            values = m.values
            if i == 1 and m.name == "gpu.0.power_avg_mw":
                values = values.copy()
                values[w % 7 :: 7] = np.nan
            if i == 2 and m.name == "disk.read_bytes" and w >= 6:
                values = values - reset_from  # restarts near 0: a counter reset
            if i == 2 and m.name == "gpu.1.power_avg_mw" and w == 3:
                values = np.full(values.size, np.nan)
            metrics.append(MetricSeries(m.name, m.timestamps, values, kind=m.kind, unit=m.unit))
        out.append(
            ProfileSnapshot(
                s.host,
                metrics,
                window_start=s.window_start,
                window_end=s.window_end,
                fingerprint=s.fingerprint,
                labels=host_labels(i),
                metadata=s.metadata,
            )
        )
    return out


@dataclass
class Fleet:
    """The store and, per host, the snapshots written to it (the reference)."""

    endpoint: str
    bucket: str
    repo: Repository
    snaps: dict[str, list[ProfileSnapshot]]

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/fleet"

    def reference(
        self, host: str, metric: str, start: int | None = None, end: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """All samples of ``metric`` on ``host`` in ``[start, end)``, straight from the input."""
        ts = np.concatenate([s.metric(metric).timestamps for s in self.snaps[host]])
        vals = np.concatenate([s.metric(metric).values for s in self.snaps[host]])
        keep = np.ones(ts.size, dtype=bool)
        if start is not None:
            keep &= ts >= start
        if end is not None:
            keep &= ts < end
        return ts[keep], vals[keep]


def _write_fleet(objects: S3Store) -> dict[str, list[ProfileSnapshot]]:
    snaps = {}
    for i in range(HOSTS):
        host_snaps = _edit(i, host_snapshots(i, WINDOWS, seed=3))
        snaps[host_snaps[0].host] = host_snaps
    errors: list[BaseException] = []

    def write(host: str) -> None:
        try:
            stream = HostStream(objects, host, CONFIG)
            for s in snaps[host]:
                stream.append(s)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(h,)) for h in snaps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return snaps


@pytest.fixture(scope="session")
def fleet(moto_server: str) -> Iterator[Fleet]:
    """Six 8-GPU hosts x 12 one-minute windows on the moto server, catalogued."""
    bucket = f"fleet-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    objects = S3Store(bucket, "fleet", endpoint_url=moto_server)
    snaps = _write_fleet(objects)
    repo = Repository(objects, CONFIG)
    for host in snaps:
        repo.refresh_catalog(host)
    yield Fleet(moto_server, bucket, repo, snaps)
