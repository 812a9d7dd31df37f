"""The compactor's lease: one compactor per bucket at a time (``marks/leases/compactor.json``).

The same lease as the recorder's (``snapcloud.index._lease``: if-absent to take,
if-match to renew, release and take over after expiry), with the compactor's
defaults: its key, a 600 s TTL and an owner id unique to the process and run.
S3 offers no fencing token, so a holder paused longer than the TTL may still
issue a request before ``keep`` notices; the compactor keeps that harmless by
making every write idempotent and deleting only after the deletion delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from snapcloud.backends import ObjectStore
from snapcloud.index._lease import Lease as _Lease
from snapcloud.index._lease import default_owner

__all__ = ["COMPACTOR_LEASE_KEY", "Lease"]

COMPACTOR_LEASE_KEY = "marks/leases/compactor.json"


class Lease(_Lease):
    """An expiring, exclusive claim on ``key`` (``clock`` returns wall-clock seconds).

    Raises ``LeaseHeld`` (acquire, renew, keep) when another owner holds it.
    """

    def __init__(
        self,
        objects: ObjectStore,
        key: str = COMPACTOR_LEASE_KEY,
        owner: str | None = None,
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(objects, key, owner or default_owner(), ttl_s, clock)
