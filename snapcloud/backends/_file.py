"""A local directory as an ``ObjectStore`` (the embedded default store).

Object ``a/b/c`` is the file ``<root>/a/b/c``. ``<root>/.tmp/`` holds writes in
progress and ``<root>/.lock`` is the lock file; neither is ever listed, and no
key may start with them.

A put writes a temp file in ``.tmp/`` and fsyncs it, then, holding an
exclusive ``flock`` on ``.lock``, checks its condition, ``os.replace``-s the
temp file into place and fsyncs the directory. Readers therefore see the old
bytes or the new, and conditional puts hold across threads and processes.
Plain puts and deletes take the same lock (it is held for a rename, never for
a write) so that a plain put cannot slip between a conditional put's check and
its rename, and a delete pruning empty directories cannot race a put's mkdir.

The ETag is the MD5 hex of the content, computed from the bytes on each read,
so ``head`` and ``list`` read whole files but files written by other tools are
seen right. A file and a directory cannot share a path, so keys ``a`` and
``a/b`` cannot both exist here (a put of the second fails with
``BackendError``), unlike on S3. Every method raises ``ValidationError`` for a
bad key.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.backends._keys import check_conditions, check_key, check_prefix, check_range
from snapcloud.backends._memory import md5_etag
from snapcloud.errors import (
    BackendError,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    ValidationError,
)

_RESERVED = frozenset({".tmp", ".lock"})
_STALE_TEMP_S = 24 * 3600  # temp files this old are a crashed writer's leftovers
_CHUNK = 1 << 20


class FileStore:
    """Objects as files under ``root``.

    ``create`` (a writer opening the store) makes ``root``, ``.tmp/`` and ``.lock``
    when missing and sweeps stale temp files; without it (a reader) nothing is
    written at open, so a read-only mount can be read, and a missing ``root`` is an
    error rather than a new, empty store. Raises ``ConfigError`` if unusable.
    """

    supports_lifecycle = False

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.description = f"file://{self.root}"
        self._tmp = self.root / ".tmp"
        self._lock_path = self.root / ".lock"
        if not create:
            if not self.root.is_dir():
                why = "not a directory" if self.root.exists() else "no such directory"
                raise ConfigError(
                    f"no store at {self.description}: {why} (a command that only reads "
                    "never creates one)",
                    field="store",
                )
            return
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._lock_path.touch(exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {self.root} as a file store: {exc.strerror or exc}"
            ) from None
        _sweep_stale_temps(self._tmp, _STALE_TEMP_S)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Store ``data`` atomically; raises ``PreconditionFailed`` or ``BackendError``."""
        path = self._path(key)
        check_conditions(if_absent, if_match)
        blob = bytes(data)
        try:
            tmp = self._write_temp(blob)
            try:
                with self._locked():
                    if if_absent and path.is_file():
                        raise PreconditionFailed(f"{key!r} already exists in {self}", key=key)
                    if if_match is not None and _etag_or_none(path) != if_match.strip('"'):
                        raise PreconditionFailed(f"{key!r} is not at ETag {if_match}", key=key)
                    self._make_parents(path.parent)
                    os.replace(tmp, path)
                    _fsync_dir(path.parent)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        except OSError as exc:
            raise self._failed("write", key, exc) from None
        return md5_etag(blob)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object or a byte range of it; raises ``ObjectNotFound`` or ``BackendError``."""
        path = self._path(key)
        check_range(byte_range)
        try:
            with open(path, "rb") as fh:
                if byte_range is None:
                    data = fh.read()
                    return GetResult(data, md5_etag(data))
                etag, _ = _md5_of(fh)
                start, end = byte_range
                fh.seek(start)
                return GetResult(fh.read(end - start), etag)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self}", key=key) from None
        except OSError as exc:
            raise self._failed("read", key, exc) from None

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag of an object, or ``None``; raises ``BackendError``."""
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                etag, size = _md5_of(fh)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._failed("read", key, exc) from None
        return ObjectInfo(key, size, etag)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order; raises ``BackendError``."""
        keys = self._keys(prefix)
        return (info for info in map(self.head, keys) if info is not None)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments under ``prefix``, each ending ``/``."""
        rests = [key[len(prefix) :] for key in self._keys(prefix)]
        return sorted({rest.split("/", 1)[0] + "/" for rest in rests if "/" in rest})

    def delete(self, key: str) -> None:
        """Remove an object (missing is fine) and its emptied parents; raises ``BackendError``."""
        path = self._path(key)
        try:
            with self._locked():
                if not path.is_file():
                    return
                path.unlink()
                _fsync_dir(path.parent)
                self._prune(path.parent)
        except OSError as exc:
            raise self._failed("delete", key, exc) from None

    def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    def __str__(self) -> str:
        return self.description

    # ------------------------------------------------------------------ helpers

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] in _RESERVED:
            raise ValidationError(f"object key {key!r} is reserved by the file store", key=key)
        return self.root / key

    def _failed(self, op: str, key: str, exc: OSError) -> BackendError:
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError)):
            why += " (a key cannot be both an object and a directory in a file store)"
        return BackendError(f"cannot {op} {key!r} in {self}: {why}", key=key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A fresh open file description per call: flock then excludes other threads
        # too, and a forked child never shares its parent's lock.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write_temp(self, blob: bytes) -> Path:
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        try:
            try:
                fh = open(tmp, "xb")  # noqa: SIM115 (closed below)
            except FileNotFoundError:  # someone removed .tmp/: make it again
                self._tmp.mkdir(parents=True, exist_ok=True)
                fh = open(tmp, "xb")  # noqa: SIM115
            with fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp

    def _make_parents(self, directory: Path) -> None:
        missing = []
        while directory != self.root and not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            new.mkdir(exist_ok=True)
            _fsync_dir(new.parent)

    def _prune(self, directory: Path) -> None:
        while directory != self.root:
            try:
                directory.rmdir()
            except OSError:  # not empty (or gone): stop, best effort
                return
            directory = directory.parent

    def _keys(self, prefix: str) -> builtins.list[str]:
        """Keys under ``prefix``, sorted, from a walk of the smallest directory holding them."""
        check_prefix(prefix)
        base = prefix.rpartition("/")[0]
        if base.split("/", 1)[0] in _RESERVED:
            return []
        keys = []
        seen: set[tuple[int, int]] = set()
        # Links are followed, as reads follow them: a directory moved to another disk
        # and linked back must be listed, or verify and repair would take its objects
        # for lost. A link that leads back into a directory being walked is refused.
        for dirpath, dirnames, filenames in os.walk(self.root / base, followlinks=True):
            _check_no_loop(dirpath, seen, self)
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel = "" if rel == "." else rel + "/"
            dirnames[:] = [
                d
                for d in dirnames
                if (rel or d not in _RESERVED)
                and ((rel + d).startswith(prefix) or prefix.startswith(rel + d + "/"))
            ]
            for name in filenames:
                key = rel + name
                if key.startswith(prefix) and (rel or name not in _RESERVED) and _is_key(key):
                    keys.append(key)
        return sorted(keys)


def _check_no_loop(dirpath: str, seen: set[tuple[int, int]], store: FileStore) -> None:
    """Raise ``BackendError`` when ``dirpath`` is a directory already walked (a link loop)."""
    try:
        st = os.stat(dirpath)
    except OSError:
        return  # gone meanwhile: os.walk lists nothing in it
    ident = (st.st_dev, st.st_ino)
    if ident in seen:
        rel = os.path.relpath(dirpath, store.root)
        raise BackendError(
            f"cannot list {store}: {rel} is a directory reached twice through symbolic "
            "links (a loop, or two links to one directory); remove one"
        )
    seen.add(ident)


def _is_key(name: str) -> bool:
    """Whether a file found on disk has a valid key (files other tools left are skipped)."""
    try:
        check_key(name)
    except ValidationError:
        return False
    return True


def _md5_of(fh: BinaryIO) -> tuple[str, int]:
    """MD5 hex and size of an open binary file, read in chunks from the start."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _etag_or_none(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return _md5_of(fh)[0]
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sweep_stale_temps(tmp_dir: Path, max_age_s: float) -> None:
    """Remove temp files a crashed writer left (best effort; a live write is never this old)."""
    cutoff = time.time() - max_age_s
    with contextlib.suppress(OSError), os.scandir(tmp_dir) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
