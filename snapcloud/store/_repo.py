"""A whole store: every host stream under one root or bucket prefix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapcloud.backends import CountingStore, ObjectStore, open_store
from snapcloud.errors import CorruptError, HostNotFound, ObjectNotFound, ValidationError
from snapcloud.index import Catalog, CatalogEntry, IndexEntry
from snapcloud.layout import CATALOG_PREFIX, INDEX_PREFIX, RAW_PREFIX, catalog_key
from snapcloud.models import SnapshotConfig, validate_host
from snapcloud.progress import ProgressCallback
from snapcloud.store._stream import HostStream
from snapcloud.store._verify import VerifyReport, verify_stream

__all__ = ["Repository"]


class Repository:
    """The host streams of one store, with request counts for everything done through it."""

    def __init__(self, objects: ObjectStore, config: SnapshotConfig | None = None) -> None:
        self.objects = CountingStore(objects)
        self.config = config or SnapshotConfig()
        self._streams: dict[str, HostStream] = {}

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        endpoint_url: str | None = None,
        config: SnapshotConfig | None = None,
        create: bool = True,
        **store_options: Any,
    ) -> Repository:
        """Open the store at ``url`` (see ``open_store``: ``create=False`` for a reader,
        ``store_options`` such as ``connect_timeout``, ``read_timeout``, ``deadline_s``
        for S3). Raises ``ConfigError``."""
        objects = open_store(url, endpoint_url=endpoint_url, create=create, **store_options)
        return cls(objects, config)

    def __repr__(self) -> str:
        return f"Repository({self.objects.description!r})"

    @property
    def description(self) -> str:
        return self.objects.description

    def hosts(self) -> list[str]:
        """Every host with an index in this store, sorted."""
        return sorted(h.rstrip("/") for h in self.objects.list_dirs(INDEX_PREFIX))

    def stream(self, host: str, *, create: bool = False) -> HostStream:
        """The stream of ``host``. Raises ``HostNotFound`` unless it exists or ``create``."""
        validate_host(host)
        st = self._streams.get(host)
        if st is None:
            st = HostStream(self.objects, host, self.config)
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

        An unreadable catalog entry is a problem; ``repair`` rebuilds it from its
        stream, or removes it when no stream is left to rebuild it from. With every
        host, catalog entries of hosts without data are checked too. ``progress`` hears
        of each object read, host by host (``snapcloud.progress``).
        """
        if host is not None:
            hosts = [validate_host(host)]
        else:
            found = {h.rstrip("/") for h in self.objects.list_dirs(RAW_PREFIX)}
            hosts = sorted(found | set(self.hosts()))
        reports = []
        for h in hosts:
            stream = HostStream(self.objects, h, self.config)
            report = verify_stream(stream, repair=repair, progress=progress)
            if repair and any(p.key == catalog_key(h) for p in report.problems):
                self._repair_catalog(h)
            reports.append(report)
        if host is None:
            reports.extend(self._verify_catalog(set(hosts), repair))
        return reports

    def _verify_catalog(self, checked: set[str], repair: bool) -> list[VerifyReport]:
        """Catalog objects of hosts ``verify_stream`` did not see: each must be an entry
        that reads back (an entry of a host without data yet, user labels, is fine)."""
        out = []
        for info in list(self.objects.list(CATALOG_PREFIX)):
            name = info.key[len(CATALOG_PREFIX) :]
            host = name[:-5] if name.endswith(".json") else ""
            if host in checked:
                continue
            report = VerifyReport(host=host or info.key, objects=1)
            try:
                got = self.objects.get(info.key)
                report.bytes_read = len(got.data)
                if catalog_key(host) != info.key:
                    raise CorruptError(f"{info.key} is not a catalog entry key", key=info.key)
                entry = CatalogEntry.from_bytes(got.data, key=info.key)
                if entry.host != host:
                    raise CorruptError(f"names host {entry.host!r}", key=info.key)
            except ObjectNotFound:
                continue
            except (CorruptError, ValidationError) as exc:
                report.add(info.key, f"{exc.message}; no stream to rebuild it from")
                if repair:
                    self.objects.delete(info.key)
                    report.add(info.key, "removed: unreadable, and no stream holds its host")
            out.append(report)
        return [r for r in out if r.problems]

    def _repair_catalog(self, host: str) -> None:
        """Rebuild ``host``'s unreadable catalog entry from its stream (none: remove it)."""
        try:
            self.refresh_catalog(host)
        except HostNotFound:
            self.objects.delete(catalog_key(host))

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
        stream = HostStream(self.objects, host, self.config)
        items = stream.serving()  # (metric names, entry) of every tier, in seq order
        if not items:
            raise HostNotFound(f"no host {host!r} in {self.description}", host=host)
        if labels is None:
            labels = stream.read(items[-1][1]).labels

        def fresh() -> list[tuple[list[str], IndexEntry]]:
            stream.relist()  # each attempt reads the index after the entry it replaces
            return stream.serving()

        return self.catalog().refresh(host, fresh, labels=labels)

    def close(self) -> None:
        self.objects.close()
