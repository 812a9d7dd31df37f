"""Workload fingerprints: GPU processes first, else the top CPU processes, always valid."""

from __future__ import annotations

from snapcloud.models import FINGERPRINT_MAX_LEN, MetricSeries
from snapcloud.recorder import Fingerprinter, gpu_process_memory, sanitize_fingerprint
from tests.recorder.fakes import FakeProc, FakePsutil


def gpu_mem(name: str, values: list[float]) -> MetricSeries:
    return MetricSeries(name, list(range(len(values))), values, unit="bytes")


def test_sanitize_cleans_dedupes_sorts_and_caps() -> None:
    assert sanitize_fingerprint(["torchrun", "python3.11", "/usr/bin/python3.11"]) == (
        "python3.11+torchrun"
    )
    assert sanitize_fingerprint(["my app (v2)", "", "  "]) == "my_app_v2"
    long = sanitize_fingerprint([f"proc{i:03d}" * 10 for i in range(50)])
    assert len(long) <= FINGERPRINT_MAX_LEN and not long.endswith("+")


def test_gpu_processes_win_by_memory() -> None:
    ps = FakePsutil(
        [
            FakeProc(10, "trainer", [1.0]),
            FakeProc(11, "dataloader", [1.0]),
            FakeProc(12, "tiny", [1.0]),
            FakeProc(13, "notebook", [1.0]),
            FakeProc(99, "busy-cpu", [400.0]),
        ]
    )
    metrics = [
        gpu_mem("gpu.0.proc.10.mem_bytes", [8e9, 9e9]),
        gpu_mem("gpu.1.proc.10.mem_bytes", [8e9, 8e9]),
        gpu_mem("gpu.0.proc.11.mem_bytes", [2e9, 2e9]),
        gpu_mem("gpu.0.proc.12.mem_bytes", [1e6, 1e6]),
        gpu_mem("gpu.0.proc.13.mem_bytes", [4e9, 1e9]),
        gpu_mem("gpu.0.proc_count", [4, 4]),
    ]
    assert gpu_process_memory(metrics) == {10: 17e9, 11: 2e9, 12: 1e6, 13: 4e9}
    fp = Fingerprinter(ps, exclude_pids=())
    assert fp.derive(metrics) == "dataloader+notebook+trainer"


def test_a_gpu_process_that_exited_is_named_by_pid() -> None:
    fp = Fingerprinter(FakePsutil([]), exclude_pids=())
    assert fp.derive([gpu_mem("gpu.0.proc.4242.mem_bytes", [1e9])]) == "pid4242"


def test_top_three_cpu_processes_without_the_recorder_itself() -> None:
    ps = FakePsutil(
        [
            FakeProc(1, "idle-daemon", [0.0]),
            FakeProc(2, "python", [0.0, 90.0]),
            FakeProc(3, "gcc", [0.0, 80.0]),
            FakeProc(4, "ld", [0.0, 70.0]),
            FakeProc(5, "make", [0.0, 10.0]),
            FakeProc(6, "snapcloud", [0.0, 99.0]),
            FakeProc(7, "gone", [0.0], gone=True),
        ]
    )
    fp = Fingerprinter(ps, exclude_pids={6})
    fp.prime()
    assert fp.derive() == "gcc+ld+python"


def test_idle_when_nothing_reaches_the_threshold() -> None:
    ps = FakePsutil([FakeProc(1, "sshd", [0.0, 0.5]), FakeProc(2, "cron", [0.0, 4.9])])
    fp = Fingerprinter(ps, exclude_pids=())
    fp.prime()
    assert fp.derive() == "idle"
