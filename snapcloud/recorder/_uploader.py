"""The uploader: sends spooled snapshots to the host stream, in order, exactly once.

One daemon thread takes the oldest spool file, appends it to the stream, and
removes the file only after the append returned. A failing store is retried
with ``Backoff`` (capped, jittered); the same file is retried, later files
wait, so the stream keeps the spool's order. Sampling never waits for it.

Exactly once: a crash between the store accepting a snapshot and the spool
file's removal leaves a file that is already in the stream. Every spooled
snapshot carries a unique ``spool_id`` in its metadata, so its content
checksum is unique too. Whenever the uploader is unsure of the stream's tail
(at start, and after any failed append, whose reply may have been lost) it
compares the snapshot, as it would be stored at each of the last
``tail_check`` seqs, against those index entries' checksums (no object reads),
confirms a match by reading that one snapshot, and removes the file instead of
appending it again.

Never over stored samples: a snapshot whose window overlaps the end of the stream
(the recorder's clock was behind when it stamped it and the store could not be
asked then) is stamped later by whole intervals, to start where the stream ends,
with the shift added to its ``clock_offset_ns`` metadata; the spool file is
rewritten with it (fsynced) before the append, so a crash in between finds the
very same snapshot in the stream and does not append it twice. The stream's end
is taken from its last ``tail_check`` entries when the uploader is unsure of the
tail, then from its own appends: no extra request in the steady state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from snapcloud.coordination import Backoff
from snapcloud.errors import SnapcloudError, SnapshotNotFound
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.recorder._spool import Spool
from snapcloud.store import HostStream

__all__ = ["Uploader", "restamp", "stream_end"]

_log = logging.getLogger(__name__)

_LEASE_POLL_S = 0.25
_IDLE_POLL_S = 1.0
_FLUSH_RETRY_CAP_S = 0.5


class Uploader:
    """Moves snapshots from a ``Spool`` into an ``HostStream`` on a thread.

    ``can_write`` says whether appending is allowed now (the lease is valid).
    ``run_once`` does one step, for tests and for the thread's loop.
    """

    def __init__(
        self,
        spool: Spool,
        stream: HostStream,
        *,
        can_write: Callable[[], bool] = lambda: True,
        backoff: Backoff | None = None,
        tail_check: int = 8,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.spool = spool
        self.stream = stream
        self.can_write = can_write
        self.backoff = backoff or Backoff()
        self.tail_check = tail_check
        self.wall_clock = wall_clock
        self.uploaded = 0
        self.duplicates_skipped = 0
        self.errors = 0
        self.failures = 0  # consecutive
        self.last_error: str | None = None
        self.last_upload_ns: int | None = None
        self.waiting_for_lease = False
        self._uncertain = True  # a predecessor may have died between accept and removal
        self._end: int | None = None  # where the stream's windows end, as far as we know
        self.restamped = 0
        self._cached: tuple[Path, ProfileSnapshot] | None = None  # decoded once across retries
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a backoff short (flush, stop)
        self._work = threading.Event()  # new spool file
        self._flushing = False
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ one step

    def run_once(self) -> float | None:
        """Upload the oldest spooled snapshot; return seconds to wait, ``None`` when idle."""
        pending = self.spool.pending()
        if not pending:
            return None
        if not self.can_write():
            if not self.waiting_for_lease:
                _log.info("uploader: waiting for the stream's lease before appending")
            self.waiting_for_lease = True
            return _LEASE_POLL_S
        self.waiting_for_lease = False
        path = pending[0]
        with self.spool.busy(path):
            snap = self._load(path)
            if snap is None:
                return 0.0  # quarantined or gone: go on with the next
            if snap.host != self.stream.host:
                self.spool.quarantine(path, f"holds host {snap.host!r}, not {self.stream.host!r}")
                return 0.0
            try:
                self._upload(path, snap)
            except (SnapcloudError, OSError) as exc:
                return self._failed(path, exc)
            except Exception as exc:  # a bug must not stop uploads for good: log, back off
                _log.exception("uploader: unexpected error on %s", path.name)
                return self._failed(path, exc)
        if self.failures:
            _log.info("uploader: store reachable again after %d failed attempt(s)", self.failures)
        self.failures = 0
        return 0.0

    def _load(self, path: Path) -> ProfileSnapshot | None:
        if self._cached is not None and self._cached[0] == path:
            return self._cached[1]
        snap = self.spool.load(path)
        self._cached = None if snap is None else (path, snap)
        return snap

    def _upload(self, path: Path, snap: ProfileSnapshot) -> None:
        if self._uncertain:
            self.stream.refresh()
            seq = self._stored_seq(snap)
            self._end = stream_end(self.stream, self.tail_check)
            self._uncertain = False
            if seq is not None:
                _log.info(
                    "uploader: %s is already stored as seq %d (an earlier run was stopped "
                    "before removing it); not appending it again",
                    path.name,
                    seq,
                )
                self.duplicates_skipped += 1
                self.spool.remove(path)
                return
        snap = self._after_the_end(path, snap)
        try:
            entry = self.stream.append(snap)
        except BaseException:
            self._uncertain = True
            raise
        self._end = entry.window_end if self._end is None else max(self._end, entry.window_end)
        self.spool.remove(path)
        self.uploaded += 1
        self.last_upload_ns = self.wall_clock()
        _log.debug(
            "uploader: %s stored as seq %d (%d bytes)", path.name, entry.seq, entry.stored_bytes
        )

    def _after_the_end(self, path: Path, snap: ProfileSnapshot) -> ProfileSnapshot:
        """``snap``, or ``snap`` stamped later so that it starts where the stream ends
        (rewritten in the spool first; see the module doc)."""
        end = self._end
        if end is None or snap.window_start >= end or not snap.metrics:
            return snap
        interval_ms = snap.metadata.get("interval_ms")
        interval = round(interval_ms * 1e6) if isinstance(interval_ms, int | float) else 0
        interval = max(interval, 1)
        shift = -(-(end - snap.window_start) // interval) * interval
        later = restamp(snap, shift)
        self.spool.rewrite(path, later)
        self._cached = (path, later)
        self.restamped += 1
        _log.warning(
            "uploader: %s overlaps the %.3f s the stream already holds (the recorder's clock "
            "was behind it); stamped %.3f s later, recorded as clock_offset_ns",
            path.name,
            (end - snap.window_start) / 1e9,
            shift / 1e9,
        )
        return later

    def _stored_seq(self, snap: ProfileSnapshot) -> int | None:
        """The seq among the stream's last ``tail_check`` that holds ``snap``, if any."""
        top = self.stream.next_seq
        for seq in range(top - 1, max(top - 1 - self.tail_check, -1), -1):
            try:
                entry = self.stream.entry(seq)
            except SnapshotNotFound:
                continue
            if entry.checksum != snap.with_seq(seq).checksum:
                continue
            stored = self.stream.get(seq)  # rule out a CRC collision: one read, only on a match
            if stored.metadata.get("spool_id") == snap.metadata.get("spool_id"):
                return seq
        return None

    def _failed(self, path: Path, exc: BaseException) -> float:
        self.errors += 1
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        delay = self.backoff.delay(self.failures - 1)
        loud = self.failures in (1, 10) or self.failures % 100 == 0
        _log.log(
            logging.WARNING if loud else logging.DEBUG,
            "uploader: %s not stored (%s); attempt %d, retrying in %.1f s; %d file(s) waiting",
            path.name,
            self.last_error,
            self.failures,
            delay,
            len(self.spool),
        )
        return delay

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.run_once()
            with self._progress:
                self._progress.notify_all()
            if delay is None:
                self._work.wait(_IDLE_POLL_S)
                self._work.clear()
            elif delay > 0:
                if self._flushing:
                    delay = min(delay, _FLUSH_RETRY_CAP_S)
                self._wake.wait(delay)
                self._wake.clear()

    def start(self) -> None:
        """Start the uploader thread."""
        self._thread = threading.Thread(target=self._run, name="snapcloud-uploader", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Say a new file is in the spool (does not cut a backoff short)."""
        self._work.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the spool to empty, retrying promptly meanwhile.

        Returns whether everything was uploaded.
        """
        deadline = time.monotonic() + timeout
        self._flushing = True
        self._wake.set()
        self._work.set()
        try:
            with self._progress:
                while len(self.spool) and self._thread is not None and self._thread.is_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._progress.wait(min(left, _IDLE_POLL_S))
        finally:
            self._flushing = False
        return len(self.spool) == 0

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop the thread after its current step; return whether it ended within ``timeout``."""
        self._stop.set()
        self._wake.set()
        self._work.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def stream_end(stream: HostStream, tail: int) -> int | None:
    """The latest window end among the stream's last ``tail`` entries (``None`` when it
    has none): where a recorder, the stream's one writer, left it."""
    top = stream.next_seq
    ends = []
    for seq in range(top - 1, max(top - 1 - tail, -1), -1):
        try:
            ends.append(stream.entry(seq).window_end)
        except SnapshotNotFound:
            continue
    return max(ends) if ends else None


def restamp(snap: ProfileSnapshot, shift_ns: int) -> ProfileSnapshot:
    """``snap`` with every timestamp and its window ``shift_ns`` later, the shift added to
    its ``clock_offset_ns`` metadata (values, names and everything else unchanged)."""
    metrics = tuple(
        MetricSeries.trusted(m.name, m.kind, m.unit, m.timestamps + shift_ns, m.values)
        for m in snap.metrics
    )
    meta = dict(snap.metadata)
    before = meta.get("clock_offset_ns")
    meta["clock_offset_ns"] = (before if isinstance(before, int) else 0) + shift_ns
    return ProfileSnapshot.trusted(
        host=snap.host,
        seq=0,
        window_start=snap.window_start + shift_ns,
        window_end=snap.window_end + shift_ns,
        fingerprint=snap.fingerprint,
        labels=dict(snap.labels),
        metadata=meta,
        metrics=metrics,
    )
