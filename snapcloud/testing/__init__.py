"""Tooling for tests and soak runs: a fault-injecting S3 proxy, and (``store``) the
``ObjectStore`` conformance suite a backend's tests subclass.

The package and its proxy import without the test extras (standard library only),
so the soak script and a user's own tests can use them; ``snapcloud.testing.store``
needs pytest and is imported by name. Nothing in the library imports this package.
"""

from __future__ import annotations

from snapcloud.testing.faultproxy import (
    FAULT_KINDS,
    FaultProxy,
    FaultStats,
    ProxiedRequest,
    RequestEvent,
)

__all__ = ["FAULT_KINDS", "FaultProxy", "FaultStats", "ProxiedRequest", "RequestEvent"]
