"""Fixtures of the GPU collector tests: the fake NVML C library under the real pynvml."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import pynvml
import pytest

from snapcloud.collectors import GpuCollector
from tests.collectors.nvml_fake import CompilerMissing, FakeNvml, build_library, load_library


@pytest.fixture(scope="session")
def fake_library() -> ctypes.CDLL:
    """fake_nvml.c, compiled once (skips the GPU tests on a machine without a C compiler)."""
    try:
        return load_library(build_library())
    except CompilerMissing as exc:  # pragma: no cover - CI images carry gcc
        pytest.skip(str(exc))


@pytest.fixture
def nvml(fake_library: ctypes.CDLL) -> Iterator[FakeNvml]:
    """Eight H100-like GPUs behind the real pynvml; pynvml's own library back after."""
    fake = FakeNvml(fake_library).reset(8)
    fake.install(pynvml)
    yield fake
    fake.uninstall()


class Clock:
    """The collector's monotonic clock and the fake library's, moved together."""

    def __init__(self, fake: FakeNvml, start: float = 1_000.0) -> None:
        self.fake = fake
        self.t = start
        fake.clock_ns(round(start * 1e9))

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.fake.clock_ns(round(self.t * 1e9))


@pytest.fixture
def clock(nvml: FakeNvml) -> Clock:
    """A clock starting at 1000 s that moves only when told."""
    return Clock(nvml)


@pytest.fixture
def open_gpu(clock: Clock) -> Iterator[Any]:
    """``open_gpu(**kw)``: a GpuCollector on the real pynvml and ``clock``; closed after."""
    opened: list[GpuCollector] = []

    def make(**kw: Any) -> GpuCollector:
        kw.setdefault("clock", clock)
        c = GpuCollector(pynvml, **kw)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()
