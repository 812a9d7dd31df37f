"""A compactor killed at any step and run again loses nothing, reads nothing twice, and
ends in the same state as a run that was never interrupted.

In-process: the step hook raises at step N (every kind of step is hit). Out of
process: a real compactor process, its store wrapped in a ``PausingStore``
(``tests/retention/pausing.py``), stops just before step N's write; the test SIGKILLs it
there (its lease is left behind, as a crash leaves it), checks the reads, and runs
the compactor again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snapcloud.backends import MemoryStore, ObjectStore, open_store
from snapcloud.models import ProfileSnapshot
from snapcloud.retention import COMPACTOR_LEASE_KEY, Compactor
from tests.retention.pausing import PausingStore
from tests.retention.scenario import CONFIG, DAY, HOUR, T0, check_reads, write_host

ROOT = Path(__file__).resolve().parents[2]
NOW = T0 + 3 * DAY + 7 * HOUR  # hard deletes, compression, an archive, expiry, orphans
HOSTS = ("gpu-1", "gpu-2")


class Crash(BaseException):
    """Stands for the process dying (not an ``Exception``: nothing may swallow it)."""


def _prepare() -> tuple[dict[str, bytes], dict[str, list[ProfileSnapshot]]]:
    """Two hosts after two earlier runs, so the next run has every kind of step to do."""
    objects = MemoryStore()
    originals = {
        "gpu-1": write_host(objects, "gpu-1", 72, step_s=10),
        "gpu-2": write_host(objects, "gpu-2", 30, step_s=10, seed=5, start_ns=T0 - DAY),
    }
    Compactor(objects, CONFIG).run(T0 + DAY)
    Compactor(objects, CONFIG).run(T0 + 2 * DAY + 2 * HOUR)
    objects.put("raw/gpu-1/2026/01/03/000000000069.d000000000060.snap", b"partial upload")
    objects.put("compressed/gpu-2/2026/01/01/000000000100-000000000103.snapt", b"partial")
    return _state(objects), originals


def _state(objects: ObjectStore) -> dict[str, bytes]:
    return {i.key: objects.get(i.key).data for i in objects.list("") if "/leases/" not in i.key}


def _load(objects: ObjectStore, state: dict[str, bytes]) -> None:
    for key, data in state.items():
        objects.put(key, data)


@pytest.fixture(scope="module")
def scenario() -> tuple[
    dict[str, bytes], dict[str, list[ProfileSnapshot]], dict[str, bytes], list[str]
]:
    """The state before the run, the originals, the state after an uninterrupted run, its steps."""
    before, originals = _prepare()
    objects = MemoryStore()
    _load(objects, before)
    steps: list[str] = []
    Compactor(objects, CONFIG, on_step=lambda n, label: steps.append(label)).run(NOW)
    return before, originals, _state(objects), steps


def _kill_points(steps: list[str], count: int, *, every_kind: bool = True) -> list[int]:
    """``count`` steps spread over the run, with (``every_kind``) the first of each kind."""
    kinds: dict[str, int] = {}
    for n, label in enumerate(steps, start=1):
        verb, key = label.split(" ", 2)[:2]
        kinds.setdefault(f"{verb} {key.split('/')[0]}", n)
    first = set(kinds.values()) if every_kind else set()
    points = set(first)
    spread = max(2, count - len(first))
    while len(points) < min(count, len(steps)):
        points = first | {1 + i * (len(steps) - 1) // (spread - 1) for i in range(spread)}
        spread += 1
    return sorted(points)


def _check(objects: ObjectStore, originals: dict[str, list[ProfileSnapshot]]) -> None:
    for host, snaps in originals.items():
        check_reads(objects, host, snaps, NOW)


def _crash_at(n: int) -> Callable[[int, str], None]:
    def hook(step: int, label: str) -> None:
        if step == n:
            raise Crash(label)

    return hook


def test_kinds_of_step_are_all_exercised(scenario: tuple) -> None:  # type: ignore[type-arg]
    _, _, _, steps = scenario
    kinds = {f"{s.split()[0]} {s.split()[1].split('/')[0]}" for s in steps}
    assert kinds >= {
        "delete index",
        "delete raw",
        "delete compressed",
        "delete archive",
        "delete marks",
        "put compressed",
        "put archive",
        "put index",
        "put mark",
    }, kinds


def test_crash_at_any_step_in_process(scenario: tuple) -> None:  # type: ignore[type-arg]
    before, originals, after, steps = scenario
    points = _kill_points(steps, 12)
    for n in points:
        objects = MemoryStore()
        _load(objects, before)
        with pytest.raises(Crash):
            Compactor(objects, CONFIG, on_step=_crash_at(n)).run(NOW)
        _check(objects, originals)  # readers are fine in the half-done state
        Compactor(objects, CONFIG).run(NOW)
        assert _state(objects) == after, f"crash before step {n} ({steps[n - 1]})"
        _check(objects, originals)


@pytest.fixture(scope="module")
def request_of_step(scenario: tuple) -> list[int]:  # type: ignore[type-arg]
    """For each step of the run, which of its mutating requests it is (1-based): the
    compactor also writes what is no step of its own (the catalog)."""
    before, _, _, steps = scenario
    objects = MemoryStore()
    _load(objects, before)
    recorded = PausingStore(objects, pause_at=0)
    Compactor(recorded, CONFIG).run(NOW)
    found: list[int] = []
    for label in steps:
        start = found[-1] if found else 0
        keys = [r.split()[-1] for r in recorded.requests]
        found.append(keys.index(label.split()[-1], start) + 1)
    return found


def _spawn(url: str, endpoint: str, step: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys\n"
        "from snapcloud.backends import open_store\n"
        "from snapcloud.retention import Compactor\n"
        "from tests.retention.pausing import PausingStore\n"
        "from tests.retention.scenario import CONFIG\n"
        "store = open_store(sys.argv[1], endpoint_url=sys.argv[2] or None)\n"
        "Compactor(PausingStore(store, int(sys.argv[4])), CONFIG).run(int(sys.argv[3]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, url, endpoint, str(NOW), str(step)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "count"), [("file", 20), ("s3", 3)])
def test_sigkill_and_rerun(
    scenario: tuple,  # type: ignore[type-arg]
    request_of_step: list[int],
    backend: str,
    count: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    before, originals, after, steps = scenario
    points = _kill_points(steps, count, every_kind=backend == "file")
    assert len(points) >= count
    endpoint = ""
    urls = []
    if backend == "s3":
        import uuid

        import boto3

        endpoint = request.getfixturevalue("moto_server")
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for _ in points:
            bucket = f"k-{uuid.uuid4().hex[:16]}"
            s3.create_bucket(Bucket=bucket)
            urls.append(f"s3://{bucket}/fleet")
    else:
        urls = [f"file://{tmp_path / f'store-{n}'}" for n in points]
    stores = [open_store(u, endpoint_url=endpoint or None) for u in urls]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda st: _load(st, before), stores))
    at = [request_of_step[n - 1] for n in points]
    procs = [_spawn(u, endpoint, m) for u, m in zip(urls, at, strict=True)]
    try:
        for proc, n, m in zip(procs, points, at, strict=True):
            assert proc.stderr is not None
            line = proc.stderr.readline().decode()
            assert f"paused before request {m}:" in line, line + proc.stderr.read().decode()
            assert line.split()[-1] == steps[n - 1].split()[-1], (line, steps[n - 1])
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for st, n in zip(stores, points, strict=True):
        _check(st, originals)  # readers are fine in the half-done state
        # the dead compactor's lease is still there, unexpired, but its pid is gone on
        # this machine: the rerun takes it at once
        assert st.get(COMPACTOR_LEASE_KEY).data
        Compactor(st, CONFIG).run(NOW)
        assert _state(st) == after, f"killed before step {n} ({steps[n - 1]})"
    _check(stores[-1], originals)
