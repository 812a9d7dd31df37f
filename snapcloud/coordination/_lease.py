"""One writer per key: a lease object taken with a conditional put, renewed, taken over stale.

The one lease of snapcloud: the recorder holds ``marks/leases/{host}.json`` (one
writer per host stream, ``snapcloud.recorder``), the compactor
``marks/leases/compactor.json`` (one compactor per bucket, ``snapcloud.retention``).
``verify --repair`` takes a host's writer lease too. It lives in
``snapcloud.coordination``, below all of them, because it needs nothing but an
``ObjectStore``; its keys are ``snapcloud.layout``'s. The lease is a small JSON object::

    {"version": 1, "owner": "node-7:4242:9f2c...", "acquired_at": 1767225600.0,
     "expires_at": 1767225660.0, "ttl_s": 60.0, "expires": "2026-01-01T00:01:00Z"}

- ``acquire`` creates it with ``if_absent``; when it exists and has expired (by
  the injected clock), or ``steal_if`` says its holder is gone, it is replaced
  with ``if_match`` on the ETag that was read, so of two racing takers exactly
  one wins. Otherwise ``LeaseHeld`` names the holder and the expiry.
- ``renew`` rewrites it with ``if_match`` on our last ETag; a failed condition
  means someone took it (it had expired) or deleted it: ``LeaseHeld``, and the
  lease is no longer held. A backend error leaves it held until it expires
  locally (``valid`` turns False), so a caller stops writing in time.
- ``release`` first rewrites it as expired (``if_match``: only if still ours),
  then deletes it if the ETag is still that of our released marker.

Clocks differ between machines: expiry is judged by the reader's clock, so the
TTL must be much larger than the skew between hosts (seconds against 60 s).
S3 offers no fencing token: a holder paused longer than the TTL may still issue
a request before its next ``renew`` finds out, so writers under a lease keep
their writes conditional or idempotent.

``keep`` renews inline when a third of the TTL has passed (a loop that does
short steps, like the compactor); ``LeaseKeeper`` runs acquire/renew on a
thread for a long-running writer (the recorder), retrying with ``Backoff``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from snapcloud.backends import ObjectStore
from snapcloud.coordination._backoff import Backoff
from snapcloud.errors import (
    BackendError,
    LeaseHeld,
    ObjectNotFound,
    PreconditionFailed,
    SnapcloudError,
    ValidationError,
)

__all__ = ["Lease", "LeaseInfo", "LeaseKeeper", "dead_local_holder", "default_owner"]

_log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_ACQUIRE_ROUNDS = 4  # each lost race re-reads the holder; more rounds than racers is never needed


def dead_local_holder(holder: LeaseInfo) -> bool:
    """Whether a lease holder is a process on this machine that no longer runs (its
    owner id is ``hostname:pid:...``): such a lease can be taken at once, not after it
    expires. A reused pid only makes the caller wait for expiry, never steal wrongly."""
    import psutil

    host, _, rest = holder.owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    return not psutil.pid_exists(int(pid_text))


def default_owner() -> str:
    """A lease owner id unique to this process: ``hostname:pid:uuid``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease object says: its owner, when it was taken and expires, and its ETag."""

    owner: str
    acquired_at: float
    expires_at: float
    etag: str

    def until(self, now: float) -> str:
        """``until <iso> (in 42 s)`` or ``until <iso> (expired 3 s ago)``, for messages."""
        left = self.expires_at - now
        when = f"in {left:.0f} s" if left >= 0 else f"expired {-left:.0f} s ago"
        return f"until {_iso(self.expires_at)} ({when})"

    def describe(self, now: float) -> str:
        """``owner 'x' until <iso> (in 42 s)`` or ``... (expired 3 s ago)``, for messages."""
        return f"owner {self.owner!r} {self.until(now)}"


def _parse(data: bytes, etag: str, key: str) -> LeaseInfo:
    """Read a lease body; an unreadable one counts as expired (it protects nobody)."""
    try:
        doc = json.loads(data)
        return LeaseInfo(
            owner=str(doc["owner"]),
            acquired_at=float(doc["acquired_at"]),
            expires_at=float(doc["expires_at"]),
            etag=etag,
        )
    except (ValueError, KeyError, TypeError):
        _log.warning("lease %s is unreadable; treating it as expired", key)
        return LeaseInfo(owner="(unreadable)", acquired_at=0.0, expires_at=0.0, etag=etag)


class Lease:
    """An exclusive, expiring claim on ``key`` in ``objects`` for ``owner``.

    ``owner`` defaults to ``default_owner()`` (unique to this process); ``key`` is a
    ``snapcloud.layout`` lease key (``lease_key(host)``, ``COMPACTOR_LEASE_KEY``).
    Thread-safe. ``clock`` returns wall-clock seconds (``time.time``). Raises
    ``ValidationError`` for a TTL that is not a positive number or an empty owner;
    methods raise ``LeaseHeld`` when another owner holds the lease and
    ``BackendError`` (or ``RetryableBackendError``) when the store fails.
    """

    def __init__(
        self,
        objects: ObjectStore,
        key: str,
        owner: str | None = None,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
            raise ValidationError(f"ttl_s: {ttl_s!r} is not a positive number", field="ttl_s")
        if owner is None:
            owner = default_owner()
        if not owner:
            raise ValidationError("owner: must not be empty", field="owner")
        self.objects = objects
        self.key = key
        self.owner = owner
        self.ttl_s = float(ttl_s)
        self.clock = clock
        self._lock = threading.RLock()
        self._etag: str | None = None
        self._acquired_at = 0.0
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"Lease(key={self.key!r}, owner={self.owner!r}, held={self.held})"

    @property
    def renew_every_s(self) -> float:
        """How often a holder renews: a third of the TTL, so two renewals can fail in a row."""
        return self.ttl_s / 3

    @property
    def held(self) -> bool:
        """Whether our last acquire or renew succeeded and nothing since said we lost it."""
        return self._etag is not None

    @property
    def expires_at(self) -> float:
        """When the lease we wrote expires (wall-clock seconds); 0 when not held."""
        return self._expires_at if self.held else 0.0

    def valid(self, margin_s: float | None = None) -> bool:
        """Held and not expiring within ``margin_s`` (default: a tenth of the TTL)."""
        margin = self.ttl_s / 10 if margin_s is None else margin_s
        return self.held and self.clock() < self._expires_at - margin

    def _body(self, acquired_at: float, expires_at: float) -> bytes:
        doc = {
            "version": _FORMAT_VERSION,
            "owner": self.owner,
            "acquired_at": acquired_at,
            "expires_at": expires_at,
            "ttl_s": self.ttl_s,
            "expires": _iso(expires_at),
        }
        return json.dumps(doc, sort_keys=True).encode()

    def read(self) -> LeaseInfo | None:
        """The lease object as stored now, or ``None`` when there is none."""
        try:
            got = self.objects.get(self.key)
        except ObjectNotFound:
            return None
        return _parse(got.data, got.etag, self.key)

    def _held_error(self, holder: LeaseInfo, now: float) -> LeaseHeld:
        return LeaseHeld(
            f"lease {self.key} is held by {holder.owner} {holder.until(now)}",
            key=self.key,
            owner=holder.owner,
            expires_at=holder.expires_at,
        )

    def _took(self, etag: str, acquired_at: float, expires_at: float) -> LeaseInfo:
        self._etag = etag
        self._acquired_at = acquired_at
        self._expires_at = expires_at
        return LeaseInfo(self.owner, acquired_at, expires_at, etag)

    def acquire(self, *, steal_if: Callable[[LeaseInfo], bool] | None = None) -> LeaseInfo:
        """Take the lease: create it, or replace it when expired (or ``steal_if(holder)``).

        Raises ``LeaseHeld`` naming the holder and its expiry when it is live.
        """
        with self._lock:
            holder: LeaseInfo | None = None
            for _ in range(_ACQUIRE_ROUNDS):
                now = self.clock()
                body = self._body(now, now + self.ttl_s)
                holder = self.read()
                try:
                    if holder is None:
                        etag = self.objects.put(self.key, body, if_absent=True)
                    elif holder.owner == self.owner or holder.expires_at <= now:
                        etag = self.objects.put(self.key, body, if_match=holder.etag)
                    elif steal_if is not None and steal_if(holder):
                        _log.warning("taking over lease %s from %s", self.key, holder.describe(now))
                        etag = self.objects.put(self.key, body, if_match=holder.etag)
                    else:
                        raise self._held_error(holder, now)
                except PreconditionFailed:
                    continue  # someone wrote between our read and our put: look again
                if holder is not None and holder.owner != self.owner:
                    _log.info("took over lease %s from %s", self.key, holder.describe(now))
                return self._took(etag, now, now + self.ttl_s)
            raise LeaseHeld(
                f"lease {self.key} keeps changing under us (another writer is taking it"
                + (f"; last seen {holder.describe(self.clock())})" if holder else ")"),
                key=self.key,
            )

    def renew(self) -> LeaseInfo:
        """Extend the lease by the TTL from now. Raises ``LeaseHeld`` when it was lost."""
        with self._lock:
            if self._etag is None:
                raise LeaseHeld(f"lease {self.key} is not held by {self.owner!r}", key=self.key)
            now = self.clock()
            body = self._body(self._acquired_at, now + self.ttl_s)
            try:
                etag = self.objects.put(self.key, body, if_match=self._etag)
            except PreconditionFailed:
                holder = self.read()
                if holder is not None and holder.owner == self.owner:
                    # An earlier renewal landed but its reply was lost: adopt its ETag.
                    self._etag = holder.etag
                    etag = self.objects.put(self.key, body, if_match=holder.etag)
                else:
                    self._etag = None
                    if holder is None:
                        raise LeaseHeld(
                            f"lease {self.key} was deleted while {self.owner!r} held it",
                            key=self.key,
                        ) from None
                    raise LeaseHeld(
                        f"lease {self.key} was lost: now held by {holder.describe(now)}",
                        key=self.key,
                        owner=holder.owner,
                        expires_at=holder.expires_at,
                    ) from None
            return self._took(etag, self._acquired_at, now + self.ttl_s)

    def keep(self) -> LeaseInfo | None:
        """Renew when a third of the TTL has passed since the last acquire or renew (else
        nothing, ``None``). Raises ``LeaseHeld`` when the lease is not held or was lost."""
        with self._lock:
            if self._etag is None:
                raise LeaseHeld(f"lease {self.key} is not held by {self.owner!r}", key=self.key)
            if self.clock() - (self._expires_at - self.ttl_s) < self.renew_every_s:
                return None
            return self.renew()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> bool:
        """Give the lease up if it is still ours; return whether it was. Never raises LeaseHeld."""
        with self._lock:
            if self._etag is None:
                return False
            etag, self._etag = self._etag, None
            now = self.clock()
            try:
                marker = self.objects.put(
                    self.key, self._body(self._acquired_at, now), if_match=etag
                )
            except PreconditionFailed:
                # Our own release marker may have landed with its reply lost (the retry
                # then fails its if-match): that is a release, not a lost lease.
                holder = self.read()
                if holder is None or holder.owner != self.owner or holder.expires_at > now:
                    _log.warning("lease %s was no longer ours at release; left alone", self.key)
                    return False
                marker = holder.etag
            # Deletes are unconditional: delete only if nobody took the released marker since.
            info = self.objects.head(self.key)
            if info is not None and info.etag == marker:
                self.objects.delete(self.key)
            return True


class LeaseKeeper:
    """Acquires a lease and keeps renewing it on a daemon thread.

    A store that does not answer is retried with ``backoff`` (the lease stays
    unheld, or held until it expires locally). ``LeaseHeld`` is fatal: it is
    kept in ``error``, ``on_lost`` is called with it, and the thread ends.
    ``step`` does one attempt and returns the seconds until the next, so tests
    drive it without a thread.
    """

    def __init__(
        self,
        lease: Lease,
        *,
        steal_if: Callable[[LeaseInfo], bool] | None = None,
        backoff: Backoff | None = None,
        on_lost: Callable[[LeaseHeld], None] | None = None,
    ) -> None:
        self.lease = lease
        self.steal_if = steal_if
        self.backoff = backoff or Backoff()
        self.on_lost = on_lost
        self.error: LeaseHeld | None = None
        self.last_problem: str | None = None
        self.first_attempt = threading.Event()
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> float | None:
        """One acquire or renew attempt; seconds until the next, ``None`` once lost."""
        if self.error is not None:
            return None
        was_held = self.lease.held
        try:
            if was_held:
                self.lease.renew()
            else:
                self.lease.acquire(steal_if=self.steal_if)
                _log.info("lease %s acquired by %s", self.lease.key, self.lease.owner)
        except LeaseHeld as exc:
            self.error = exc
            self.last_problem = str(exc)
            if self.on_lost is not None:
                self.on_lost(exc)
            return None
        except (BackendError, SnapcloudError, OSError) as exc:
            self._failures += 1
            self.last_problem = f"lease {'renewal' if was_held else 'acquisition'} failed: {exc}"
            loud = self._failures in (1, 10) or self._failures % 100 == 0
            level = logging.WARNING if loud else logging.DEBUG
            _log.log(level, "%s (attempt %d; retrying)", self.last_problem, self._failures)
            delay = self.backoff.delay(self._failures - 1)
            return min(delay, self.lease.renew_every_s) if was_held else delay
        finally:
            self.first_attempt.set()
        if self._failures:
            _log.info("lease %s %s again", self.lease.key, "renewed" if was_held else "acquired")
        self._failures = 0
        self.last_problem = None
        return self.lease.renew_every_s

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception:  # never let the keeper die silently: retry later
                _log.exception("lease keeper: unexpected error")
                delay = self.lease.renew_every_s
            if delay is None:
                return
            self._stop.wait(delay)

    def start(self) -> None:
        """Start the keeper thread (its first step acquires the lease)."""
        self._thread = threading.Thread(target=self._run, name="snapcloud-lease", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop the thread; return whether it ended within ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
