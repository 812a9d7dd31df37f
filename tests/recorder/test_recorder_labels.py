"""Labels that change during a run (a GPU lost, a MIG layout, a driver) reach the next window."""

from __future__ import annotations

from pathlib import Path

from snapcloud.backends import MemoryStore
from snapcloud.recorder import Recorder, RecorderConfig
from snapcloud.store import Repository
from tests.recorder.fakes import FakeClock, FakeCollector

HOST = "node-1"


def test_a_label_that_changes_mid_run_is_in_the_windows_sealed_after(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    coll = FakeCollector(clock, label_values={"gpu.0.uuid": "GPU-a"})

    def change(k: int) -> None:
        if k == 15:  # mid second window
            coll.label_values.update({"gpu.0.uuid": "GPU-b", "gpu.0.lost": "true"})

    coll.on_collect = change
    config = RecorderConfig(
        interval_s=0.1,
        window_s=1.0,
        fingerprint="x",
        spool_dir=tmp_path / "spool",
        labels={"team": "ml"},
        lease_wait_s=5.0,
    )
    Recorder(Repository(objects), HOST, [coll], config, clock=clock).run(duration=3.4)
    stream = Repository(objects).stream(HOST)
    labels = [stream.get(e.seq).labels for e in stream.entries()]
    assert labels[0] == {"gpu.0.uuid": "GPU-a", "team": "ml"}
    assert labels[1] == labels[2] == {"gpu.0.uuid": "GPU-b", "gpu.0.lost": "true", "team": "ml"}
