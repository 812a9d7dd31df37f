"""A local directory as an ``ObjectStore`` (the embedded default store).

Writes are atomic: a temp file in ``<root>/.tmp/``, fsync, ``os.replace`` into
place, fsync of the directory. Every put and delete holds an exclusive
``flock`` on ``<root>/.lock``, so conditional puts hold across threads and
processes. Keys map to paths below the root; ``check_key`` keeps them there.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.backends._keys import check_key, check_prefix
from snapcloud.backends._memory import etag_of
from snapcloud.errors import BackendError, ObjectNotFound, PreconditionFailed

_RESERVED = (".tmp", ".lock")


class FileStore:
    """Objects as files under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.description = f"file://{self.root}"
        try:
            (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
            (self.root / ".lock").touch(exist_ok=True)
        except OSError as exc:
            raise BackendError(
                f"cannot use {self.root} as a store: {exc.strerror}", key=str(self.root)
            ) from None
        self._thread_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] in _RESERVED:
            raise ObjectNotFound(f"{key} is reserved", key=key)
        return self.root / key

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.root / ".lock", "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Store ``data`` atomically; raises ``PreconditionFailed`` or ``BackendError``."""
        path = self._path(key)
        blob = bytes(data)
        tmp = self.root / ".tmp" / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            with self._locked():
                if if_absent and path.exists():
                    raise PreconditionFailed(f"{key} already exists", key=key)
                if if_match is not None:
                    try:
                        current = etag_of(path.read_bytes())
                    except FileNotFoundError:
                        current = None
                    if current != if_match:
                        raise PreconditionFailed(f"{key} changed (ETag mismatch)", key=key)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                _fsync_dir(path.parent)
        except OSError as exc:
            raise BackendError(f"cannot write {key}: {exc.strerror}", key=key) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return etag_of(blob)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object or a byte range of it; raises ``ObjectNotFound``."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key} in {self.description}", key=key) from None
        except OSError as exc:
            raise BackendError(f"cannot read {key}: {exc.strerror}", key=key) from None
        etag = etag_of(data)
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1]]
        return GetResult(data, etag)

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag, or ``None``."""
        try:
            got = self.get(key)
        except ObjectNotFound:
            return None
        return ObjectInfo(key, len(got.data), got.etag)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order."""
        for key in self._keys(prefix):
            info = self.head(key)
            if info is not None:
                yield info

    def _keys(self, prefix: str) -> builtins.list[str]:
        check_prefix(prefix)
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        keys: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in _RESERVED]
                rel_dir = ""
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix) and key not in _RESERVED:
                    keys.append(key)
        return sorted(keys)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments under ``prefix``, each ending with ``/``."""
        rest = [k[len(prefix) :] for k in self._keys(prefix)]
        return sorted({k.split("/", 1)[0] + "/" for k in rest if "/" in k})

    def delete(self, key: str) -> None:
        """Remove an object and its emptied parent directories; missing is not an error."""
        path = self._path(key)
        with self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                return
            except OSError as exc:
                raise BackendError(f"cannot delete {key}: {exc.strerror}", key=key) from None
            parent = path.parent
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def close(self) -> None:
        """Nothing to release."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
