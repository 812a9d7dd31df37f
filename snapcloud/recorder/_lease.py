"""The recorder's writer lease: one recorder per host stream (``marks/leases/{host}.json``).

The lease itself lives in ``snapcloud.index._lease`` (shared with the compactor);
this module keeps the recorder's import path. How it works: that module's docstring.
"""

from __future__ import annotations

from snapcloud.index._lease import (
    Backoff,
    Lease,
    LeaseInfo,
    LeaseKeeper,
    dead_local_holder,
    default_owner,
    lease_key,
)

__all__ = [
    "Backoff",
    "Lease",
    "LeaseInfo",
    "LeaseKeeper",
    "dead_local_holder",
    "default_owner",
    "lease_key",
]
