"""The GPU collector inside a recorder run: a GPU lost mid-run and XID events reach the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pynvml

from snapcloud.backends import MemoryStore
from snapcloud.collectors import GpuCollector
from snapcloud.recorder import Recorder, RecorderConfig
from snapcloud.store import Repository
from tests.collectors.nvml_fake import GPU_IS_LOST, FakeNvml
from tests.recorder.fakes import FakeClock, FakeCollector

HOST = "gpu-node-1"


def test_lost_gpu_and_xid_events_reach_the_stored_snapshots(nvml: FakeNvml, tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    gpu = GpuCollector(pynvml, recheck_s=1.0, clock=clock.monotonic)

    def script(k: int) -> None:  # k: the tick, 0.1 s apart
        if k == 5:
            nvml.set(2, "lost", GPU_IS_LOST)
        if k == 13:
            nvml.xid(3, 79)
            nvml.xid(3, 48)

    config = RecorderConfig(
        interval_s=0.1,
        window_s=1.0,
        fingerprint="train",
        spool_dir=tmp_path / "spool",
        lease_wait_s=5.0,
    )
    try:
        Recorder(
            Repository(objects),
            HOST,
            [FakeCollector(clock, on_collect=script), gpu],
            config,
            clock=clock,
        ).run(duration=2.4)
    finally:
        gpu.close()
    stream = Repository(objects).stream(HOST)
    snaps = [stream.get(e.seq) for e in stream.entries()]
    assert len(snaps) == 3
    assert "gpu.2.lost" not in snaps[0].labels and snaps[0].labels["gpu.2.uuid"].startswith("GPU-")
    assert snaps[1].labels["gpu.2.lost"] == "true" and snaps[2].labels["gpu.2.lost"] == "true"
    assert set(snaps[0].metric("gpu.2.lost").values) == {0.0}
    assert snaps[1].metric("gpu.2.lost").values[-1] == 1.0
    assert "gpu.2.temp_c" not in snaps[2].metric_names
    xid = snaps[1].metric("gpu.3.xid")
    assert list(xid.values) == [79.0, 48.0] and xid.timestamps[0] == xid.timestamps[1]
    ticks = snaps[1].metric("fake.tick")
    assert xid.timestamps[0] == ticks.timestamps[list(ticks.values).index(13.0)]
    assert snaps[1].metric("gpu.3.xid_count").values[-1] == 2.0
    assert np.all(snaps[2].metric("gpu.0.temp_c").values == nvml.knob(0, "temp_gpu"))
