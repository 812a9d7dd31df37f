"""The recorder: sampler, spool, uploader and lease wired together for one host stream.

::

    collectors -tick-> Sampler -window-> seal -put+fsync-> Spool -oldest-> Uploader -> stream
                                                                              ^
                                     LeaseKeeper (acquire, renew every ttl/3) | can_write

The main thread samples and seals; sealing writes to the spool and returns,
so a slow or absent store never delays sampling. The uploader thread appends
spooled snapshots in order while the lease is valid. ``run`` ends on its
duration or when ``stop_event`` is set (the CLI sets it on SIGINT/SIGTERM):
the partial window is sealed, the uploader gets ``flush_timeout_s`` to empty
the spool, the lease is released, and what is left stays spooled for the next
run. Losing the lease (another writer took it) stops the run: the partial
window is spooled, nothing more is appended, and ``run`` raises ``LeaseHeld``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from snapcloud.collectors import Collector
from snapcloud.coordination import Backoff, Lease, LeaseKeeper, dead_local_holder, default_owner
from snapcloud.errors import LeaseHeld, SnapcloudError, ValidationError
from snapcloud.layout import lease_key
from snapcloud.models import (
    FINGERPRINT_MAX_LEN,
    ProfileSnapshot,
    validate_host,
    validate_metric_name,
)
from snapcloud.recorder._fingerprint import Fingerprinter
from snapcloud.recorder._journal import Journal
from snapcloud.recorder._sampler import Clock, Sampler, Tick, Window
from snapcloud.recorder._spool import DEFAULT_SPOOL_MAX_BYTES, Spool
from snapcloud.recorder._uploader import Uploader, stream_end
from snapcloud.store import Repository

__all__ = [
    "RecordSummary",
    "Recorder",
    "RecorderConfig",
    "RecorderStatus",
    "SealedWindow",
    "default_spool_dir",
]

_log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STOP_JOIN_S = 1.0  # how long run() waits for the uploader and lease threads to end


def default_spool_dir(host: str) -> Path:
    """The spool of ``host``: ``<user cache dir>/snapcloud/spool/<host>``."""
    return Path(platformdirs.user_cache_dir("snapcloud")) / "spool" / validate_host(host)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValidationError(f"{name}: {value!r} is not a positive number", field=name)


@dataclass(frozen=True)
class RecorderConfig:
    """Settings of a recorder run; raises ``ValidationError`` for unusable values."""

    interval_s: float = 1.0
    window_s: float = 60.0
    fingerprint: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    spool_dir: Path | None = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    flush_timeout_s: float = 10.0
    lease_ttl_s: float = 60.0
    lease_wait_s: float = 3.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    tail_check: int = 8
    align: bool = True

    def __post_init__(self) -> None:
        for name in ("interval_s", "window_s", "lease_ttl_s", "backoff_base_s", "backoff_cap_s"):
            _positive(name, getattr(self, name))
        for name in ("flush_timeout_s", "lease_wait_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValidationError(f"{name}: {value!r} is negative", field=name)
        if self.spool_max_bytes < 1:
            raise ValidationError("spool_max_bytes: must be positive", field="spool_max_bytes")
        if self.fingerprint is not None and (
            not self.fingerprint
            or len(self.fingerprint) > FINGERPRINT_MAX_LEN
            or _CONTROL.search(self.fingerprint)
        ):
            raise ValidationError(
                f"fingerprint: {self.fingerprint!r} is empty, over {FINGERPRINT_MAX_LEN} "
                "characters or holds a control character",
                field="fingerprint",
            )
        for key, value in self.labels.items():
            validate_metric_name(key, "labels")
            if _CONTROL.search(value) or len(value) > 1024:
                raise ValidationError(f"labels[{key!r}]: unusable value", field="labels")


@dataclass
class RecorderStatus:
    """Where a recorder stands: for a status line, a log line or a test."""

    host: str
    ticks: int = 0
    windows: int = 0
    uploaded: int = 0
    pending: int = 0
    spool_bytes: int = 0
    dropped: int = 0  # spooled, then dropped over the spool's bound
    quarantined: int = 0  # spooled, then found corrupt: moved aside, never uploaded
    unspooled: int = 0  # sealed but never spooled (the spool's disk full or failing)
    duplicates_skipped: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    errors: int = 0
    last_error: str | None = None
    last_upload_ns: int | None = None
    lease: str = "waiting"  # held | waiting | lost


@dataclass
class RecordSummary(RecorderStatus):
    """What a finished ``Recorder.run`` did; ``flushed`` is False when files stay spooled."""

    flushed: bool = False
    duration_s: float = 0.0
    spool_dir: str = ""

    @property
    def lost(self) -> int:
        """Windows sealed in this run or spooled before that the store will never get."""
        return self.dropped + self.quarantined + self.unspooled


@dataclass(frozen=True)
class SealedWindow:
    """A window just sealed and spooled: the snapshot, its spool file, the recorder's status."""

    snapshot: ProfileSnapshot
    path: Path
    status: RecorderStatus


class Recorder:
    """Records the stream of ``host`` in ``repo`` from ``collectors`` until stopped.

    ``clock`` drives the sampler (tests inject a fake one); ``lease_clock``
    judges lease expiry (wall-clock seconds); ``rng`` jitters the backoffs;
    ``on_window`` is called in the sampling thread after each window is spooled.
    The collectors are not closed here: whoever opened them closes them.
    """

    def __init__(
        self,
        repo: Repository,
        host: str,
        collectors: Sequence[Collector],
        config: RecorderConfig | None = None,
        *,
        clock: Clock | None = None,
        lease_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        fingerprinter: Fingerprinter | None = None,
        on_window: Callable[[SealedWindow], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.host = validate_host(host)
        self.repo = repo
        self.config = config or RecorderConfig()
        self.collectors = list(collectors)
        self.stream = repo.stream(self.host, create=True)
        self.lease = Lease(
            repo.objects,
            lease_key(self.host),
            owner or default_owner(),
            self.config.lease_ttl_s,
            lease_clock,
        )
        self.sampler = Sampler(
            self.collectors,
            interval_s=self.config.interval_s,
            window_s=self.config.window_s,
            clock=clock,
            align=self.config.align,
        )
        self.fingerprinter = None if self.config.fingerprint else fingerprinter or Fingerprinter()
        rng = rng or random.Random()
        self._backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s, rng)
        self.keeper = LeaseKeeper(
            self.lease, steal_if=dead_local_holder, backoff=self._backoff, on_lost=self._lost
        )
        self.spool_dir = Path(self.config.spool_dir or default_spool_dir(self.host))
        self.on_window = on_window
        self.spool: Spool | None = None
        self.uploader: Uploader | None = None
        self.journal: Journal | None = None
        self._labels: dict[str, str] = {}
        self._unreported_drops = 0
        self._unspooled = 0
        self._errors = 0
        self._last_error: str | None = None
        self._stop: threading.Event | None = None
        self._ran = False

    def __repr__(self) -> str:
        return f"Recorder(host={self.host!r}, store={self.repo.description!r})"

    # ------------------------------------------------------------------ status

    def status(self) -> RecorderStatus:
        """A consistent-enough snapshot of the counters (read without stopping anything)."""
        st = RecorderStatus(host=self.host)
        self._fill(st)
        return st

    def _fill(self, st: RecorderStatus) -> None:
        s = self.sampler.stats
        st.ticks, st.windows = s.ticks, s.windows
        st.late_ticks, st.skipped_ticks = s.late_ticks, s.skipped_ticks
        st.errors = self._errors + s.collect_errors
        st.last_error = self._last_error
        if self.spool is not None:
            st.pending, st.spool_bytes = len(self.spool), self.spool.size_bytes
            st.dropped, st.quarantined = self.spool.dropped_total, self.spool.quarantined_total
        st.unspooled = self._unspooled
        if self.uploader is not None:
            up = self.uploader
            st.uploaded, st.duplicates_skipped = up.uploaded, up.duplicates_skipped
            st.last_upload_ns = up.last_upload_ns
            st.errors += up.errors
            st.last_error = up.last_error or st.last_error
        if self.keeper.error is not None:
            st.lease = "lost"
        else:
            st.lease = "held" if self.lease.valid(0.0) else "waiting"
            st.last_error = st.last_error or self.keeper.last_problem

    # ------------------------------------------------------------------ run

    def stop(self) -> None:
        """Ask a running ``run`` to seal its window, flush and return (thread-safe)."""
        if self._stop is not None:
            self._stop.set()

    def _lost(self, exc: LeaseHeld) -> None:
        _log.error(
            "%s; stopping: nothing more is appended to host %r without the lease", exc, self.host
        )
        self.stop()

    def run(
        self, duration: float | None = None, stop_event: threading.Event | None = None
    ) -> RecordSummary:
        """Record until ``duration`` seconds have passed or ``stop_event`` is set.

        Raises ``LeaseHeld`` when another recorder holds the host's lease (at
        start, or later: the stream was taken over) or uses the spool directory,
        ``OSError`` when the spool directory cannot be used. A recorder runs once.
        """
        if self._ran:
            raise RuntimeError("a Recorder runs once; make a new one to record again")
        self._ran = True
        self._stop = stop_event or threading.Event()
        started = time.monotonic()
        cfg = self.config
        flushed = False
        self.spool = Spool(self.spool_dir, max_bytes=cfg.spool_max_bytes)
        self.journal = Journal(self.spool_dir)
        resume = self._recover()
        self.uploader = Uploader(
            self.spool,
            self.stream,
            can_write=self.lease.valid,
            backoff=self._backoff,
            tail_check=cfg.tail_check,
        )
        uploader_ended = True
        try:
            self.keeper.start()
            self._await_lease()
            self.uploader.start()
            uploader_ended = False
            self._labels = self._collect_labels()
            if self.fingerprinter is not None:
                self.fingerprinter.prime()
            _log.info(
                "recording host %r every %g s, windows of %g s, into %s (spool %s)",
                self.host,
                self.sampler.interval_s,
                self.sampler.window_ns / 1e9,
                self.repo.description,
                self.spool_dir,
            )
            self.sampler.run(
                self._seal,
                stop=self._stop,
                duration_s=duration,
                not_before_ns=self._not_before(),
                resume=resume,
                on_tick=self._journal_tick,
            )
            if self.keeper.error is None and len(self.spool):
                flushed = self.uploader.flush(cfg.flush_timeout_s)
            else:
                flushed = not len(self.spool)
        finally:
            # Short joins: a thread stuck on a silent store must not stretch the exit past
            # the flush timeout (both are daemons; the lease then expires by itself).
            uploader_ended = self.uploader.stop(timeout=_STOP_JOIN_S)
            self.keeper.stop(timeout=_STOP_JOIN_S)
            if uploader_ended and self.keeper.error is None:
                self._release()
            if self.journal is not None:
                self.journal.close()
            self.spool.close()
        summary = RecordSummary(host=self.host)
        self._fill(summary)
        summary.flushed = flushed and summary.pending == 0
        summary.duration_s = time.monotonic() - started
        summary.spool_dir = str(self.spool_dir)
        if self.keeper.error is not None:
            raise LeaseHeld(
                f"{self.keeper.error}; stopped recording host {self.host!r} "
                f"({summary.pending} snapshot(s) kept in {self.spool_dir})",
                host=self.host,
            )
        if summary.pending:
            _log.warning(
                "%d snapshot(s) (%d bytes) not uploaded; they stay in %s for the next run",
                summary.pending,
                summary.spool_bytes,
                self.spool_dir,
            )
        return summary

    def _await_lease(self) -> None:
        """Wait briefly for the first lease attempt, so a second recorder is refused up front."""
        wait = self.config.lease_wait_s
        if not self.keeper.first_attempt.wait(wait):
            _log.warning(
                "store %s has not answered within %g s; sampling into the spool meanwhile",
                self.repo.description,
                wait,
            )
        elif self.keeper.error is not None:
            raise LeaseHeld(
                f"host {self.host!r} is already being recorded: {self.keeper.error}. "
                "Stop that recorder or record under another host id",
                host=self.host,
            ) from self.keeper.error
        elif not self.lease.held:
            _log.warning("store not reachable yet; sampling into the spool, retrying the store")

    # ------------------------------------------------------------------ journal

    def _recover(self) -> list[Tick]:
        """Take what a stopped run left in the journal: a window sealed but not confirmed
        spooled goes (again) into the spool, the ticks of the window it was filling are
        returned for the sampler to go on with. The journal then holds just those ticks."""
        assert self.spool is not None and self.journal is not None
        try:
            replay = self.journal.replay()
            if replay.sealed is not None:
                sid = replay.sealed.metadata.get("spool_id")
                if all(Spool.spool_id(p) != sid for p in self.spool.pending()):
                    self.spool.put(replay.sealed)
                    _log.info(
                        "journal: a window sealed by a stopped run was not confirmed in the "
                        "spool; spooled it again (the uploader skips it if the store has it)"
                    )
            self.journal.reset()
            for tick in replay.ticks:
                self.journal.tick(tick)
            if replay.ticks:
                self.journal.sync()
                _log.info(
                    "journal: %d tick(s) a stopped run took are replayed into this run's "
                    "first window",
                    len(replay.ticks),
                )
            return replay.ticks
        except OSError as exc:
            self._journal_failed(exc)
            return []

    def _journal_tick(self, tick: Tick) -> None:
        if self.journal is None:
            return
        try:
            self.journal.tick(tick)
        except OSError as exc:
            self._journal_failed(exc)

    def _journal_failed(self, exc: OSError) -> None:
        # Without the journal a kill loses the open window, as before it existed; the
        # sealed windows still go through the spool. Say so once and go on sampling.
        self._errors += 1
        self._last_error = f"journal failed: {exc}"
        _log.error("journal %s failed (%s); recording goes on without it", self.journal, exc)
        if self.journal is not None:
            with contextlib.suppress(OSError):
                self.journal.close()
        self.journal = None

    def _not_before(self) -> int | None:
        """Where this host's data already ends: the newest spooled window, and the
        stream's last entries when the store answered at start. A wall clock behind it
        must not stamp over it (the sampler then stamps from there on)."""
        assert self.spool is not None
        ends = []
        pending = self.spool.pending()
        newest = self.spool.load(pending[-1]) if pending else None
        if newest is not None:
            ends.append(newest.window_end)
        if self.lease.held:
            try:
                end = stream_end(self.stream, self.config.tail_check)
            except (SnapcloudError, OSError) as exc:
                _log.info("stream end unknown at start (%s); the uploader checks it", exc)
            else:
                if end is not None:
                    ends.append(end)
        return max(ends) if ends else None

    def _release(self) -> None:
        try:
            if self.lease.release():
                _log.info("lease %s released", self.lease.key)
        except (SnapcloudError, OSError) as exc:
            _log.warning("lease %s not released (%s); it expires by itself", self.lease.key, exc)

    def _collect_labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for c in self.collectors:
            try:
                found = c.labels()
            except Exception as exc:  # a collector's facts are optional, its samples are not
                _log.warning("collector %s: labels unavailable (%s)", c.name, exc)
                continue
            for key, value in found.items():
                try:
                    validate_metric_name(key, "labels")
                except ValidationError:
                    _log.info("collector %s: label %r dropped (bad name)", c.name, key)
                    continue
                labels[key] = _CONTROL.sub(" ", str(value))[:1024]
        labels.update(self.config.labels)
        return labels

    def _seal(self, window: Window) -> None:
        assert self.spool is not None and self.uploader is not None
        if self.config.fingerprint:
            fingerprint = self.config.fingerprint
        else:
            assert self.fingerprinter is not None
            fingerprint = self.fingerprinter.derive(window.metrics)
        metadata = {
            "samples": window.ticks,
            "late_ticks": window.late_ticks,
            "skipped_ticks": window.skipped_ticks,
            "max_late_ms": round(window.max_late_ms, 3),
            "collect_errors": window.collect_errors,
            "spool_dropped": self._unreported_drops,
            "spool_dropped_total": self.spool.dropped_total + self._unspooled,
            "interval_ms": self.sampler.interval_ns / 1e6,
            "partial": window.partial,
            "spool_id": uuid.uuid4().hex,
        }
        if window.clock_offset_ns:
            metadata["clock_offset_ns"] = window.clock_offset_ns
        if window.recovered_ticks:
            metadata["recovered_ticks"] = window.recovered_ticks
        # Device facts change (a GPU lost, a MIG layout, a driver): each window says what held
        # when it was sealed.
        self._labels = self._collect_labels()
        snap = ProfileSnapshot(
            self.host,
            window.metrics,
            window_start=window.start_ns,
            window_end=window.end_ns,
            fingerprint=fingerprint,
            labels=self._labels,
            metadata=metadata,
        )
        if self.journal is not None:
            try:
                self.journal.seal(snap)  # a kill from here on finds the window here
            except OSError as exc:
                self._journal_failed(exc)
        try:
            path = self.spool.put(snap)
        except OSError as exc:
            # Disk full or gone: this window is lost, says so in the next one, and
            # counts in the summary (the run then exits non-zero).
            self._errors += 1
            self._unspooled += 1
            why = f"{exc.strerror or exc}: {self.spool_dir}"
            self._last_error = f"spool write failed: {why}"
            self._unreported_drops += 1
            _log.error("window %s not spooled (%s); it is lost", window.start_ns, why)
            return
        if self.journal is not None:
            try:
                self.journal.reset()  # the spool has the window now
            except OSError as exc:
                self._journal_failed(exc)
        self._unreported_drops = self.spool.enforce_bound()
        self.uploader.notify()
        status = self.status()
        _log.info(
            "sealed window %s: %d ticks, %d metrics, fingerprint %r; spool %d file(s), %d bytes; "
            "%d uploaded",
            path.name,
            window.ticks,
            len(window.metrics),
            fingerprint,
            status.pending,
            status.spool_bytes,
            status.uploaded,
        )
        if self.on_window is not None:
            self.on_window(SealedWindow(snap, path, status))
