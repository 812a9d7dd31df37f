"""Public names renamed in a restructuring stay importable, with a warning, for one release."""

from __future__ import annotations

import pytest

import snapcloud
import snapcloud.store
from snapcloud.store import HostStream


@pytest.mark.parametrize("module", [snapcloud, snapcloud.store])
def test_incremental_snapshot_store_is_host_stream_with_a_warning(module: object) -> None:
    with pytest.warns(DeprecationWarning, match="now HostStream"):
        old = module.IncrementalSnapshotStore  # type: ignore[attr-defined]
    assert old is HostStream
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_one_lease_class() -> None:
    from snapcloud.coordination import Lease
    from snapcloud.recorder import Lease as RecorderLease
    from snapcloud.retention import Lease as RetentionLease

    assert RecorderLease is Lease and RetentionLease is Lease
