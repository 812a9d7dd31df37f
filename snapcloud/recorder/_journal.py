"""The sample journal: every tick of the open window, on disk, until the window is spooled.

A sealed window is safe in the spool; the window being filled lives in memory. So that
a recorder killed mid-window (SIGKILL, OOM kill, a crash) loses at most the tick it was
taking, every tick is appended to ``<spool>/journal`` as it is taken, and the next run
replays the file into its first window. Layout: records, each::

    u32 length of body | u32 CRC32C of body | body
    body: u8 type, then
      1 METRIC  u16 id, JSON [name, kind, unit]    a metric's first appearance in this file
      2 TICK    i64 ts, i64 window start, u32 skipped ticks, u16 collect errors,
                u8 late, u16 n, n x u16 metric id, n x f64 value (little endian)
      3 SEALED  a snapshot (keyframe encoding), written just before it goes to the spool

A record that is cut short or fails its CRC ends the file: it and anything after it were
never whole on disk, so reading stops there (a torn tail from a crash, not corruption).

Durability. ``write`` hands each record to the kernel at once, so a process that dies
(even by SIGKILL) leaves every tick it took in the page cache, which the kernel writes
out on its own: a killed recorder loses at most the tick in progress. A power cut or a
kernel crash loses what was not fsynced: the file is fsynced when ``fsync_every_s``
(default 5 s) have passed since the last fsync, and before every seal, so a power cut
costs at most the last 5 s of samples of the open window (sealed windows are fsynced in
the spool before they are acknowledged). Fsyncing every tick would cut that to one
interval at the cost of a synchronous disk flush per tick in the sampling thread; 5 s
bounds the loss well below the 60 s window it protects and keeps the flush rate at
0.2/s. The cost at 1 Hz with 8 GPUs is in docs/BENCHMARKS.md.

Sealing a window: ``seal(snapshot)`` appends a SEALED record and fsyncs; the recorder
then puts the snapshot in the spool (fsynced) and calls ``reset``, which empties the
file. Killed between the two, the next run finds the SEALED record and makes sure the
spool holds that very snapshot (same spool id, same bytes): if the spool no longer has
it, it was uploaded or never written, and putting it again is safe because the
uploader's start-up check finds an already stored snapshot by its spool id.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import crc32c
import numpy as np

from snapcloud import codec
from snapcloud.collectors import Sample
from snapcloud.errors import CorruptError, ValidationError
from snapcloud.models import ProfileSnapshot
from snapcloud.recorder._sampler import Tick

__all__ = ["DEFAULT_FSYNC_EVERY_S", "JOURNAL_NAME", "Journal", "Replay"]

_log = logging.getLogger(__name__)

JOURNAL_NAME = "journal"
DEFAULT_FSYNC_EVERY_S = 5.0
_FRAME = struct.Struct("<II")
_TICK = struct.Struct("<qqIHBH")
_METRIC, _TICK_RECORD, _SEALED = 1, 2, 3
_MAX_RECORD = 1 << 30
_MAX_METRICS = 1 << 16


@dataclass
class Replay:
    """What a journal held: the ticks of the open window, and the last sealed snapshot
    whose spooling was not confirmed by a reset (``None`` if there is none)."""

    ticks: list[Tick] = field(default_factory=list)
    sealed: ProfileSnapshot | None = None


class Journal:
    """The journal file of one spool directory (the spool's lock makes it ours alone).

    ``clock`` is monotonic seconds (injected so tests control the fsync schedule).
    Raises ``OSError`` when the file cannot be opened or written.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync_every_s: float = DEFAULT_FSYNC_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(directory) / JOURNAL_NAME
        self.fsync_every_s = fsync_every_s
        self.clock = clock
        self.fsyncs = 0
        self._ids: dict[tuple[str, str, str], int] = {}
        self._fd: int | None = None
        self._synced_at = clock()
        self._full_warned = False

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    # ------------------------------------------------------------------ read

    def replay(self) -> Replay:
        """Read the file: the open window's ticks and an unconfirmed sealed snapshot.

        A torn or corrupt tail ends the reading (logged); nothing raises for it.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Replay()
        out = Replay()
        metrics: dict[int, tuple[str, str, str]] = {}
        pos = 0
        while pos < len(data):
            body = _record(data, pos)
            if body is None:
                _log.warning(
                    "journal %s: %d byte(s) at offset %d are not a whole record (a write "
                    "cut short); the ticks before them are replayed",
                    self.path,
                    len(data) - pos,
                    pos,
                )
                break
            try:
                self._apply(body, metrics, out)
            except (ValueError, KeyError, struct.error, CorruptError, ValidationError) as exc:
                _log.warning(
                    "journal %s: record at %d unreadable (%s); stopped", self.path, pos, exc
                )
                break
            pos += _FRAME.size + len(body)
        self._ids = {v: k for k, v in metrics.items()}
        if pos < len(data):  # appending after a torn tail would hide what follows it
            os.truncate(self.path, pos)
        return out

    @staticmethod
    def _apply(body: bytes, metrics: dict[int, tuple[str, str, str]], out: Replay) -> None:
        kind = body[0]
        if kind == _METRIC:
            (ident,) = struct.unpack_from("<H", body, 1)
            name, mkind, unit = json.loads(body[3:].decode("utf-8"))
            metrics[ident] = (str(name), str(mkind), str(unit))
        elif kind == _TICK_RECORD:
            ts, start, skipped, errors, late, n = _TICK.unpack_from(body, 1)
            at = 1 + _TICK.size
            ids = np.frombuffer(body, dtype="<u2", count=n, offset=at)
            values = np.frombuffer(body, dtype="<f8", count=n, offset=at + 2 * n)
            samples = [
                Sample(metrics[i][0], v, metrics[i][1], metrics[i][2])  # type: ignore[arg-type]
                for i, v in zip(ids.tolist(), values.tolist(), strict=True)
            ]
            out.ticks.append(Tick(ts, start, samples, skipped, errors, bool(late)))
        elif kind == _SEALED:
            out.sealed = codec.decode(body[1:], key="journal")
            out.ticks.clear()  # those ticks are that snapshot
        else:
            raise ValueError(f"unknown record type {kind}")

    # ------------------------------------------------------------------ write

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self._fd

    def _write(self, body: bytes) -> None:
        os.write(self._open(), _framed(body))

    def tick(self, tick: Tick) -> None:
        """Append one tick (and the metrics it names first); fsync on the schedule.

        A tick naming more than 65,536 metrics in one window is written without the
        rest (logged once): the ids are 16 bits; the window in memory keeps them all.
        """
        ids: list[int] = []
        values: list[float] = []
        head: list[bytes] = []
        for s in tick.samples:
            key = (s.name, s.kind, s.unit)
            ident = self._ids.get(key)
            if ident is None:
                if len(self._ids) >= _MAX_METRICS:
                    self._warn_full()
                    continue
                ident = self._ids[key] = len(self._ids)
                text = json.dumps([s.name, s.kind, s.unit]).encode()
                head.append(_framed(bytes([_METRIC]) + struct.pack("<H", ident) + text))
            ids.append(ident)
            values.append(float(s.value))
        fixed = _TICK.pack(
            tick.ts, tick.window_start, tick.skipped, tick.errors, int(tick.late), len(ids)
        )
        body = b"".join(
            (
                bytes([_TICK_RECORD]),
                fixed,
                np.asarray(ids, dtype="<u2").tobytes(),
                np.asarray(values, dtype="<f8").tobytes(),
            )
        )
        os.write(self._open(), b"".join((*head, _framed(body))))
        if self.clock() - self._synced_at >= self.fsync_every_s:
            self.sync()

    def _warn_full(self) -> None:
        if not self._full_warned:
            self._full_warned = True
            _log.warning("journal %s: over %d metrics in one window", self.path, _MAX_METRICS)

    def seal(self, snapshot: ProfileSnapshot) -> None:
        """Record that ``snapshot`` (the ticks so far) is about to go to the spool; fsynced."""
        self._write(bytes([_SEALED]) + codec.encode_keyframe(snapshot))
        self.sync()

    def sync(self) -> None:
        """fsync the file now."""
        if self._fd is not None:
            os.fsync(self._fd)
            self.fsyncs += 1
        self._synced_at = self.clock()

    def reset(self) -> None:
        """Empty the file: its window is in the spool. The next tick starts a new table."""
        fd = self._open()
        os.ftruncate(fd, 0)
        os.fsync(fd)
        self._ids.clear()
        self._synced_at = self.clock()

    def close(self) -> None:
        """Close the file (what it holds stays for the next run)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _framed(body: bytes) -> bytes:
    return _FRAME.pack(len(body), crc32c.crc32c(body)) + body


def _record(data: bytes, pos: int) -> bytes | None:
    """The body of the record at ``pos``, or ``None`` when it is not whole or not intact."""
    if pos + _FRAME.size > len(data):
        return None
    size, crc = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + size
    if size < 1 or size > _MAX_RECORD or end > len(data):
        return None
    body = data[pos + _FRAME.size : end]
    return body if crc32c.crc32c(body) == crc else None
