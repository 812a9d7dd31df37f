"""A whole store: every host stream under one root or bucket prefix."""

from __future__ import annotations

from collections.abc import Mapping

from snapcloud.backends import CountingStore, ObjectStore, open_store
from snapcloud.errors import HostNotFound
from snapcloud.index import Catalog, CatalogEntry, IndexEntry
from snapcloud.models import SnapshotConfig, validate_host
from snapcloud.progress import ProgressCallback
from snapcloud.store._stream import IncrementalSnapshotStore
from snapcloud.store._verify import VerifyReport, verify_stream

__all__ = ["Repository"]


class Repository:
    """The host streams of one store, with request counts for everything done through it."""

    def __init__(self, objects: ObjectStore, config: SnapshotConfig | None = None) -> None:
        self.objects = CountingStore(objects)
        self.config = config or SnapshotConfig()
        self._streams: dict[str, IncrementalSnapshotStore] = {}

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        endpoint_url: str | None = None,
        config: SnapshotConfig | None = None,
    ) -> Repository:
        """Open the store at ``url`` (see ``open_store``). Raises ``ConfigError``."""
        return cls(open_store(url, endpoint_url=endpoint_url), config)

    def __repr__(self) -> str:
        return f"Repository({self.objects.description!r})"

    @property
    def description(self) -> str:
        return self.objects.description

    def hosts(self) -> list[str]:
        """Every host with an index in this store, sorted."""
        return sorted(h.rstrip("/") for h in self.objects.list_dirs("index/"))

    def stream(self, host: str, *, create: bool = False) -> IncrementalSnapshotStore:
        """The stream of ``host``. Raises ``HostNotFound`` unless it exists or ``create``."""
        validate_host(host)
        st = self._streams.get(host)
        if st is None:
            st = IncrementalSnapshotStore(self.objects, host, self.config)
            if not create and st.next_seq == 0:
                raise HostNotFound(f"no host {host!r} in {self.description}", host=host)
            self._streams[host] = st
        return st

    def requests(self) -> dict[str, int]:
        """Requests made through this repository so far, by operation."""
        return self.objects.counts()

    def verify(
        self,
        host: str | None = None,
        *,
        repair: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[VerifyReport]:
        """Check (and with ``repair`` rebuild the index of) one host or every host.

        ``progress`` hears of each object read, host by host (``snapcloud.progress``).
        """
        if host is not None:
            hosts = [validate_host(host)]
        else:
            found = {h.rstrip("/") for h in self.objects.list_dirs("raw/")}
            hosts = sorted(found | set(self.hosts()))
        return [
            verify_stream(
                IncrementalSnapshotStore(self.objects, h, self.config),
                repair=repair,
                progress=progress,
            )
            for h in hosts
        ]

    def catalog(self) -> Catalog:
        """The fleet catalog of this store (``catalog/{host}.json``), through the counted store."""
        return Catalog(self.objects)

    def refresh_catalog(self, host: str, labels: Mapping[str, str] | None = None) -> CatalogEntry:
        """Rebuild ``host``'s catalog entry from its index and store it.

        Reads the index of every tier (listings plus one read per segment) and,
        unless ``labels`` are given, the labels of the latest snapshot (at most two
        object reads). User labels set through the catalog are kept; concurrent
        updates are never lost (conditional puts, retried). Raises ``HostNotFound``.
        """
        validate_host(host)
        stream = IncrementalSnapshotStore(self.objects, host, self.config)
        items = stream._serving(None)  # (metric names, entry) of every tier, in seq order
        if not items:
            raise HostNotFound(f"no host {host!r} in {self.description}", host=host)
        if labels is None:
            labels = stream.read(items[-1][1]).labels

        def fresh() -> list[tuple[list[str], IndexEntry]]:
            stream.relist()  # each attempt reads the index after the entry it replaces
            return stream._serving(None)

        return self.catalog().refresh(host, fresh, labels=labels)

    def close(self) -> None:
        self.objects.close()
