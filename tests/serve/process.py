"""A ``snapcloud serve`` process started by a test or benchmark: wait until it is ready."""

from __future__ import annotations

import subprocess
import time

import requests


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:  # type: ignore[type-arg]
    """Return once the server at ``url`` answers ``/-/ready``. Raises ``RuntimeError``
    (with the process's output) if it exits first, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: {_output(proc)}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve did not answer {url}/-/ready within {timeout_s} s")
        time.sleep(0.1)


def _output(proc: subprocess.Popen) -> str:  # type: ignore[type-arg]
    pipe = proc.stderr or proc.stdout
    data = pipe.read() if pipe is not None else ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
