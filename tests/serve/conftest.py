"""A served store: a small synthetic GPU fleet written to a file store or to the moto S3
server, and ``snapcloud serve``'s app running in a real Uvicorn server on loopback."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn

from snapcloud.backends import open_store
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.serve import PrometheusAPI, ServeConfig, create_app, open_api
from snapcloud.store import Repository
from snapcloud.synth import host_snapshots

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
WINDOWS = 20  # one-minute windows: 20 minutes
HOSTS = 3
S = 10**9


def _with_xid(snap: ProfileSnapshot, h: int, w: int) -> ProfileSnapshot:
    """Every host gets a rack label; host 0 gets GPU 0's uuid and XID counters (GPU 2 sees
    two XID 79 events in window 12)."""
    ts = snap.metrics[0].timestamps
    extra = []
    for g in range(8 if h == 0 else 0):
        count = np.full(ts.size, 2.0 if (g == 2 and w >= 12) else 0.0)
        last = np.full(ts.size, 79.0 if (g == 2 and w >= 12) else 0.0)
        extra.append(MetricSeries(f"gpu.{g}.xid_count", ts, count, kind="counter", unit="events"))
        extra.append(MetricSeries(f"gpu.{g}.xid_last", ts, last, kind="gauge", unit="xid"))
    return ProfileSnapshot(
        snap.host,
        [*snap.metrics, *extra],
        window_start=snap.window_start,
        window_end=snap.window_end,
        fingerprint=snap.fingerprint,
        labels={**snap.labels, "gpu.0.uuid": "GPU-0000", "rack": f"r{h % 2}"}
        if h == 0
        else {**snap.labels, "rack": f"r{h % 2}"},
        metadata=snap.metadata,
    )


def write_fleet(repo: Repository) -> dict[str, list[ProfileSnapshot]]:
    """Write the fleet; return each host's snapshots (the reference)."""
    out = {}
    for h in range(HOSTS):
        snaps = [
            _with_xid(s, h, w)
            for w, s in enumerate(host_snapshots(h, WINDOWS, seed=18, start_ns=T0))
        ]
        stream = repo.stream(snaps[0].host, create=True)
        for s in snaps:
            stream.append(s)
        repo.refresh_catalog(snaps[0].host)
        out[snaps[0].host] = snaps
    return out


@dataclass
class Served:
    """A running server: its base URL, the API object behind it, the reference data."""

    url: str
    api: PrometheusAPI
    snaps: dict[str, list[ProfileSnapshot]]
    figures: list[dict]


def _serve(api: PrometheusAPI) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(
        create_app(api), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module", params=["file", "s3"])
def served(request, tmp_path_factory, moto_server) -> Iterator[Served]:
    if request.param == "file":
        url, endpoint = f"file://{tmp_path_factory.mktemp('store')}", None
    else:
        bucket = f"serve-{uuid.uuid4().hex[:20]}"
        boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
        url, endpoint = f"s3://{bucket}/fleet", moto_server
    writer = Repository(open_store(url, endpoint_url=endpoint))
    snaps = write_fleet(writer)
    writer.close()
    api = open_api(url, endpoint_url=endpoint, config=ServeConfig(timeout_s=60))
    figures: list[dict] = []
    api.on_query = figures.append
    api.clock = lambda: (T0 + WINDOWS * 60 * S) / S
    for base in _serve(api):
        yield Served(base, api, snaps, figures)
