"""Tooling for tests and soak runs: a fault-injecting S3 proxy.

Importable without the test extras (standard library only), so the soak script
and a user's own tests can use it. Nothing in the library imports this package.
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
