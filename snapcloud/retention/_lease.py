"""A lease on one key, built on conditional puts: one compactor per bucket at a time.

The lease object holds its owner, a random token and an expiry (wall-clock ns).
``acquire`` creates it with if-absent, or takes over an expired one with
if-match on the ETag it read; ``renew`` and ``release`` use if-match on the ETag
it last wrote, so a holder that lost the lease finds out (``LeaseHeld``) instead
of overwriting the new holder. S3 offers no fencing token, so a holder paused
longer than the TTL may still issue a request before it notices; the compactor
keeps that harmless by making every write idempotent and deleting only after
the deletion delay.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from types import TracebackType

from snapcloud.backends import ObjectStore
from snapcloud.errors import LeaseHeld, ObjectNotFound, PreconditionFailed, ValidationError

__all__ = ["COMPACTOR_LEASE_KEY", "Lease"]

log = logging.getLogger(__name__)

COMPACTOR_LEASE_KEY = "marks/leases/compactor.json"


class Lease:
    """An expiring, exclusive claim on ``key`` (``clock`` returns wall-clock seconds)."""

    def __init__(
        self,
        objects: ObjectStore,
        key: str = COMPACTOR_LEASE_KEY,
        owner: str | None = None,
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValidationError("lease ttl must be positive", field="ttl_s")
        self.objects = objects
        self.key = key
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.ttl_s = ttl_s
        self.clock = clock
        self.token = uuid.uuid4().hex
        self._etag: str | None = None
        self._renewed = 0.0

    def __repr__(self) -> str:
        return f"Lease(key={self.key!r}, owner={self.owner!r}, held={self.held})"

    @property
    def held(self) -> bool:
        """Whether this process holds the lease (as far as it knows)."""
        return self._etag is not None

    def _body(self, expires: float) -> bytes:
        doc = {
            "owner": self.owner,
            "token": self.token,
            "acquired_s": self.clock(),
            "expires_s": expires,
        }
        return json.dumps(doc, sort_keys=True).encode()

    def acquire(self) -> None:
        """Take the lease. Raises ``LeaseHeld`` when another holder's lease has not expired."""
        now = self.clock()
        try:
            self._etag = self.objects.put(self.key, self._body(now + self.ttl_s), if_absent=True)
            self._renewed = now
            return
        except PreconditionFailed:
            pass
        try:
            got = self.objects.get(self.key)
        except ObjectNotFound:
            return self.acquire()  # released and removed between our two requests
        try:
            doc = json.loads(got.data)
            holder, expires = str(doc["owner"]), float(doc["expires_s"])
        except (ValueError, KeyError, TypeError):
            holder, expires = "unknown", 0.0  # unreadable: treat as expired
        if expires > now:
            raise LeaseHeld(
                f"{self.key} is held by {holder} for another {expires - now:.0f} s",
                key=self.key,
                owner=holder,
            )
        try:
            self._etag = self.objects.put(self.key, self._body(now + self.ttl_s), if_match=got.etag)
        except PreconditionFailed:
            raise LeaseHeld(f"{self.key} was taken by another process", key=self.key) from None
        self._renewed = now
        log.info("took over expired lease %s from %s", self.key, holder)

    def renew(self) -> None:
        """Extend the lease. Raises ``LeaseHeld`` when it was lost."""
        if self._etag is None:
            raise LeaseHeld(f"{self.key} is not held", key=self.key)
        now = self.clock()
        try:
            self._etag = self.objects.put(
                self.key, self._body(now + self.ttl_s), if_match=self._etag
            )
        except PreconditionFailed:
            self._etag = None
            raise LeaseHeld(f"lost the lease {self.key} to another process", key=self.key) from None
        self._renewed = now

    def keep(self) -> None:
        """Renew when a third of the TTL has passed since the last renewal."""
        if self.clock() - self._renewed >= self.ttl_s / 3:
            self.renew()

    def release(self) -> None:
        """Give the lease up (write it as expired); a lost lease is left alone."""
        if self._etag is None:
            return
        try:
            self.objects.put(self.key, self._body(0.0), if_match=self._etag)
        except PreconditionFailed:
            log.warning("lease %s was taken over before release", self.key)
        finally:
            self._etag = None

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
