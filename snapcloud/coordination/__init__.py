"""Coordination between writers, readers and the compactor on one store.

- ``Lease``: one writer per key (a host stream's recorder or repair, the compactor),
  taken with a conditional put, renewed, taken over once stale; ``LeaseKeeper``
  keeps one on a thread; ``Backoff`` spaces the retries.
- ``DeletionMark``, ``ConflictRecord``: the marks readers list before the index
  (two-phase deletion; seqs repair could not decide).

Their keys are ``snapcloud.layout``'s (``lease_key``, ``COMPACTOR_LEASE_KEY``,
``mark_key``, ``conflict_key``). Nothing here knows about snapshots or indexes.
"""

from __future__ import annotations

from snapcloud.coordination._backoff import Backoff
from snapcloud.coordination._lease import (
    Lease,
    LeaseInfo,
    LeaseKeeper,
    dead_local_holder,
    default_owner,
)
from snapcloud.coordination._marks import ConflictRecord, DeletionMark

__all__ = [
    "Backoff",
    "ConflictRecord",
    "DeletionMark",
    "Lease",
    "LeaseInfo",
    "LeaseKeeper",
    "dead_local_holder",
    "default_owner",
]
