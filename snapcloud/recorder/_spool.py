"""The recorder's local spool: sealed snapshots on disk until the store has them.

Layout of a spool directory (one per host)::

    <spool>/.lock                               flock held by the one recorder using it
    <spool>/000000000042-<spool_id>.snap        a sealed snapshot, oldest number first
    <spool>/.tmp-<uuid>                         a write in progress (removed on open)
    <spool>/quarantine/<name>.snap              a corrupt file, moved aside, never uploaded
    <spool>/quarantine/<name>.snap.reason       why it was moved

A spool file is the snapshot encoded as a keyframe object
(``codec.encode_keyframe``), so it carries its own frame and content checksums:
a torn or bit-rotted file fails ``codec.decode`` and is quarantined. ``put``
writes a temp file, fsyncs it, renames it into place and fsyncs the directory
before returning, so a snapshot ``put`` has acknowledged survives a crash or a
power cut. ``<spool_id>`` (32 hex digits) is also in the snapshot's metadata
(``spool_id``): that is what the uploader looks for in the stream to avoid
appending a snapshot twice.

The spool is bounded (``max_bytes``): ``enforce_bound`` drops the oldest files
(never the one being uploaded, never the newest) and returns how many.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from snapcloud import codec
from snapcloud.errors import CorruptError, LeaseHeld, ValidationError
from snapcloud.models import ProfileSnapshot

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no flock; one recorder per spool is on trust)
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_SPOOL_MAX_BYTES", "Spool"]

_log = logging.getLogger(__name__)

DEFAULT_SPOOL_MAX_BYTES = 1 << 30
QUARANTINE = "quarantine"
_NAME = re.compile(r"(\d{12})-([0-9a-f]{32})\.snap")
_TMP_PREFIX = ".tmp-"
_MAX_SPOOL_FILE = 1 << 30  # decode limit for one spool file


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover  (platforms that cannot open a directory)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A directory of sealed snapshots, oldest first, bounded in bytes; thread-safe.

    Opening takes an exclusive lock on the directory: a second recorder on the
    same spool gets ``LeaseHeld``. Unfinished temp files are removed. Raises
    ``OSError`` when the directory cannot be created or written.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    ):
        if max_bytes < 1:
            raise ValidationError(
                f"spool max_bytes: {max_bytes} is not positive", field="max_bytes"
            )
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.dropped_total = 0
        self.quarantined_total = 0
        self._lock = threading.RLock()
        self._files: dict[Path, int] = {}
        self._busy: set[Path] = set()
        self._next = 0
        self._lockfile: IO[str] | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            self._scan()
        except OSError as exc:
            # say where: a full disk's write() error carries no file name
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.directory)) from exc

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, files={len(self._files)}, bytes={self.size_bytes})"

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ open / close

    def _take_lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        f = open(self.directory / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise LeaseHeld(
                f"spool directory {self.directory} is in use by another recorder "
                f"(pid {holder}); stop it or use another --spool-dir",
                path=str(self.directory),
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lockfile = f

    def close(self) -> None:
        """Release the directory lock (the files stay for the next recorder)."""
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None

    def _scan(self) -> None:
        stale = 0
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(_TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write that was never acknowledged
                stale += 1
            elif path.name.endswith(".snap") and path.is_file():
                m = _NAME.fullmatch(path.name)
                if m is None:
                    self._move_aside(path, "file name is not <number>-<spool_id>.snap")
                    continue
                self._files[path] = path.stat().st_size
                self._next = max(self._next, int(m.group(1)) + 1)
        if stale:
            _log.info("spool %s: removed %d unfinished write(s)", self.directory, stale)
        if self._files:
            _log.info(
                "spool %s: %d snapshot(s), %d bytes left by an earlier run",
                self.directory,
                len(self._files),
                self.size_bytes,
            )

    # ------------------------------------------------------------------ state

    @property
    def size_bytes(self) -> int:
        """Bytes held by spooled snapshots (quarantine not counted)."""
        with self._lock:
            return sum(self._files.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def pending(self) -> list[Path]:
        """Spooled snapshot files, oldest first."""
        with self._lock:
            return sorted(self._files)

    @staticmethod
    def spool_id(path: Path) -> str | None:
        """The spool id a spool file's name carries, or ``None`` for another name."""
        m = _NAME.fullmatch(path.name)
        return m.group(2) if m else None

    # ------------------------------------------------------------------ write

    def put(self, snapshot: ProfileSnapshot) -> Path:
        """Write ``snapshot`` durably (fsync file and directory) and return its path.

        Adds a fresh ``spool_id`` to the metadata when it has none. Raises
        ``ValidationError`` for a malformed ``spool_id``, ``OSError`` when the
        disk fails (nothing is then acknowledged).
        """
        sid = snapshot.metadata.get("spool_id")
        if sid is None:
            sid = uuid.uuid4().hex
            meta = {**snapshot.metadata, "spool_id": sid}
            snapshot = ProfileSnapshot.trusted(
                host=snapshot.host,
                seq=0,
                window_start=snapshot.window_start,
                window_end=snapshot.window_end,
                fingerprint=snapshot.fingerprint,
                labels=snapshot.labels,
                metadata=dict(sorted(meta.items())),
                metrics=snapshot.metrics,
            )
        elif not (isinstance(sid, str) and re.fullmatch(r"[0-9a-f]{32}", sid)):
            raise ValidationError(
                f"metadata spool_id: {sid!r} is not 32 hex digits", field="metadata"
            )
        data = codec.encode_keyframe(snapshot.with_seq(0) if snapshot.seq else snapshot)
        tmp = self.directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self._lock:
                path = self.directory / f"{self._next:012d}-{sid}.snap"
                self._next += 1
                os.replace(tmp, path)
                self._files[path] = len(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        return path

    def rewrite(self, path: Path, snapshot: ProfileSnapshot) -> None:
        """Replace a spooled snapshot with another of the same spool id, durably (temp
        file, fsync, rename over it, fsync the directory); the uploader does this to
        restamp a snapshot before appending it. Raises ``ValidationError`` when the spool
        id differs, ``OSError`` when the disk fails (the old file then stays)."""
        if snapshot.metadata.get("spool_id") != self.spool_id(path):
            raise ValidationError(f"spool rewrite: {path.name} holds another spool id")
        data = codec.encode_keyframe(snapshot.with_seq(0) if snapshot.seq else snapshot)
        tmp = self.directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self._lock:
                os.replace(tmp, path)
                self._files[path] = len(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)

    def enforce_bound(self) -> int:
        """Drop the oldest files until the spool fits ``max_bytes``; return how many went.

        The newest file and the one being uploaded are never dropped, so one
        snapshot larger than the bound still gets its chance.
        """
        dropped = 0
        with self._lock:
            order = sorted(self._files)
            total = sum(self._files.values())
            for path in order[:-1]:
                if total <= self.max_bytes:
                    break
                if path in self._busy:
                    continue
                total -= self._files.pop(path)
                path.unlink(missing_ok=True)
                dropped += 1
            self.dropped_total += dropped
        if dropped:
            _fsync_dir(self.directory)
            _log.warning(
                "spool %s over its bound of %d bytes: dropped the %d oldest snapshot(s)",
                self.directory,
                self.max_bytes,
                dropped,
            )
        return dropped

    # ------------------------------------------------------------------ read / remove

    @contextlib.contextmanager
    def busy(self, path: Path) -> Iterator[None]:
        """Mark ``path`` as being uploaded: ``enforce_bound`` leaves it alone meanwhile."""
        with self._lock:
            self._busy.add(path)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(path)

    def load(self, path: Path) -> ProfileSnapshot | None:
        """Decode a spooled snapshot; a corrupt one is quarantined and ``None`` returned."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            with self._lock:
                self._files.pop(path, None)
            return None
        try:
            snap = codec.decode(data, max_decoded_size=_MAX_SPOOL_FILE, key=path.name)
        except (CorruptError, ValidationError) as exc:
            self.quarantine(path, f"does not decode: {exc}")
            return None
        if snap.metadata.get("spool_id") != self.spool_id(path):
            self.quarantine(path, "its metadata spool_id does not match its file name")
            return None
        return snap

    def remove(self, path: Path) -> None:
        """Forget a spooled snapshot once the store has it (a missing file is fine)."""
        with self._lock:
            self._files.pop(path, None)
            path.unlink(missing_ok=True)
        _fsync_dir(self.directory)

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move ``path`` into ``quarantine/`` with a ``.reason`` file; it is never uploaded."""
        with self._lock:
            self._files.pop(path, None)
            return self._move_aside(path, reason)

    def _move_aside(self, path: Path, reason: str) -> Path:
        qdir = self.directory / QUARANTINE
        qdir.mkdir(exist_ok=True)
        target = qdir / path.name
        n = 1
        while target.exists():
            target = qdir / f"{path.name}.{n}"
            n += 1
        os.replace(path, target)
        target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")
        _fsync_dir(self.directory)
        self.quarantined_total += 1
        _log.error("spool: %s is corrupt (%s); moved to %s", path.name, reason, target)
        return target
