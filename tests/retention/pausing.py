"""Stop a real compactor process before its N-th write, for a test to SIGKILL it there.

``PausingStore`` wraps the store a compactor process uses. Before the N-th
mutating request (put or delete) that is not on the compactor's lease, it writes
``paused before request N: put KEY`` to stderr and waits to be killed. A test picks
N from an in-process run of the same compactor over a ``PausingStore`` that never
pauses (``pause_at=0``), whose ``requests`` lists those requests in order: each
of the compactor's own steps (its ``on_step`` hook) is one of them.

Two ways in: a test's child process wraps its store itself, or runs the CLI::

    python -m tests.retention.pausing N -- compact --store URL ...

which runs ``snapcloud`` with every store it opens wrapped.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from snapcloud.backends import ForwardingStore, ObjectStore
from snapcloud.retention import COMPACTOR_LEASE_KEY


class PausingStore(ForwardingStore):
    """Forwards everything; records each mutating request off the lease (``requests``:
    ``"put KEY"``, ``"delete KEY"``) and before the ``pause_at``-th, stops for good."""

    def __init__(self, inner: ObjectStore, pause_at: int) -> None:
        super().__init__(inner)
        self.pause_at = pause_at
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def _step(self, what: str, key: str) -> None:
        if key == COMPACTOR_LEASE_KEY:
            return
        with self._lock:
            self.requests.append(f"{what} {key}")
            n = len(self.requests)
        if n == self.pause_at:
            os.write(2, f"paused before request {n}: {what} {key}\n".encode())
            while True:  # until the test kills this process
                time.sleep(3600)

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        self._step("put", key)
        return self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    def delete(self, key: str) -> None:
        self._step("delete", key)
        self.inner.delete(key)


def run_cli(pause_at: int, argv: list[str]) -> int:
    """Run ``snapcloud argv`` with every store it opens wrapped in a ``PausingStore``."""
    from snapcloud.cli import main
    from snapcloud.store import _repo

    opener = getattr(_repo, "open_store")  # noqa: B009

    def open_store(*args: Any, **kw: Any) -> ObjectStore:
        return PausingStore(opener(*args, **kw), pause_at)

    setattr(_repo, "open_store", open_store)  # noqa: B010 (a test hook replacing a module global)
    return main(argv)


if __name__ == "__main__":
    step, dashes, *command = sys.argv[1:]
    if not step.isdigit() or dashes != "--":
        sys.exit("usage: python -m tests.retention.pausing N -- SNAPCLOUD-ARGS...")
    sys.exit(run_cli(int(step), command))
