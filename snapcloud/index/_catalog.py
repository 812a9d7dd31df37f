"""The fleet catalog: one small JSON object per host stream, ``catalog/{host}.json``.

An entry says what a host is (labels: CPU and GPU models, counts, UUIDs, driver,
user labels) and what its stream holds (time bounds, snapshots and bytes per
tier, metric names, fingerprints), so a fleet query can pick hosts without
opening any stream. It is built from the stream's index segments alone
(``entry_from_segments``) plus the labels of its latest snapshot.

Several writers may update one entry at once (a recorder refreshing its
statistics while an operator sets a user label). Every change is a
read-modify-write with a conditional put: ``if_absent`` for the first version,
``if_match`` on the ETag read otherwise, retried with full jitter backoff when
the condition fails, so no concurrent update is lost. Like an index segment,
an entry carries a CRC32C over its canonical JSON and is checked on read.

One unreadable entry (a changed byte, junk under ``catalog/``) must not break the
fleet: ``read``, ``entries`` and ``hosts`` skip it with a warning naming its key,
and an update (``refresh``) replaces it with an entry rebuilt from the stream.
``get`` stays strict (``CorruptError``) for callers that check, such as ``verify``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snapcloud._checked_json import dump_checked, load_checked
from snapcloud.backends import ObjectStore
from snapcloud.errors import (
    ChecksumMismatch,
    ConflictError,
    CorruptError,
    ObjectNotFound,
    PreconditionFailed,
    ValidationError,
)
from snapcloud.index._segment import IndexEntry, IndexSegment
from snapcloud.layout import CATALOG_PREFIX, catalog_key
from snapcloud.models import (
    LABEL_VALUE_MAX_LEN,
    validate_host,
    validate_metric_name,
)

__all__ = [
    "CATALOG_VERSION",
    "Catalog",
    "CatalogEntry",
    "TierStats",
    "entry_from_index",
    "entry_from_segments",
]

log = logging.getLogger(__name__)

CATALOG_VERSION = 1


class TierStats(BaseModel):
    """What one retention tier of a host stream holds."""

    model_config = ConfigDict(extra="forbid")

    snapshots: int = Field(0, ge=0)
    keyframes: int = Field(0, ge=0)
    segments: int = Field(0, ge=0)
    samples: int = Field(0, ge=0)
    stored_bytes: int = Field(0, ge=0)
    raw_bytes: int = Field(0, ge=0)
    first_ns: int | None = None
    last_ns: int | None = None


class CatalogEntry(BaseModel):
    """The catalog's facts about one host stream.

    ``labels`` are the host facts of the stream's latest snapshot and are replaced
    on every refresh; ``user_labels`` are set through the catalog and survive
    refreshes. Selectors see both (``all_labels``, user labels winning).
    ``first_ns``/``last_ns`` bound the stream's snapshot windows, all tiers together.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    host: str
    labels: dict[str, str] = Field(default_factory=dict)
    user_labels: dict[str, str] = Field(default_factory=dict)
    first_ns: int | None = None
    last_ns: int | None = None
    tiers: dict[str, TierStats] = Field(default_factory=dict)
    metrics: list[str] = Field(default_factory=list)
    fingerprints: list[str] = Field(default_factory=list)
    updated_ns: int = 0

    def all_labels(self) -> dict[str, str]:
        """Snapshot labels overlaid with user labels."""
        return {**self.labels, **self.user_labels}

    @property
    def snapshots(self) -> int:
        """Snapshots in every tier together."""
        return sum(t.snapshots for t in self.tiers.values())

    @property
    def stored_bytes(self) -> int:
        """Stored bytes in every tier together."""
        return sum(t.stored_bytes for t in self.tiers.values())

    def to_bytes(self) -> bytes:
        """Canonical JSON with a ``crc32c`` field over everything else."""
        return dump_checked(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> CatalogEntry:
        """Parse and check an entry. Raises ``CorruptError`` subclasses naming the key."""
        return load_checked(cls, data, what="catalog entry", version=CATALOG_VERSION, key=key)


def _tier_of(key: str) -> str:
    """The tier an object key lives in: its first path segment (tier first in every key)."""
    return key.split("/", 1)[0]


def entry_from_index(
    host: str,
    items: Iterable[tuple[Sequence[str], IndexEntry]],
    *,
    labels: Mapping[str, str] | None = None,
    previous: CatalogEntry | None = None,
) -> CatalogEntry:
    """A catalog entry rebuilt from ``(metric names, index entry)`` pairs of every tier.

    ``labels`` replace the snapshot labels (``None`` keeps ``previous``'s); user
    labels always come from ``previous``. An entry's tier is its key's first segment;
    ``segments`` counts raw keyframe groups and tier objects.
    """
    tiers: dict[str, TierStats] = {}
    groups: dict[str, set[tuple[int, str]]] = {}
    metrics: set[str] = set()
    fingerprints: set[str] = set()
    for names, e in items:
        tier = _tier_of(e.key)
        st = tiers.setdefault(tier, TierStats())
        groups.setdefault(tier, set()).add((e.base, "") if tier == "raw" else (0, e.key))
        st.snapshots += 1
        st.keyframes += tier == "raw" and e.kind == "k"  # a tier object's members are not
        st.samples += e.samples
        st.stored_bytes += e.stored_bytes
        st.raw_bytes += e.raw_bytes
        st.first_ns = e.window_start if st.first_ns is None else min(st.first_ns, e.window_start)
        st.last_ns = e.window_end if st.last_ns is None else max(st.last_ns, e.window_end)
        fingerprints.add(e.fingerprint)
        metrics.update(names)
    for tier, st in tiers.items():
        st.segments = len(groups[tier])
    firsts = [t.first_ns for t in tiers.values() if t.first_ns is not None]
    lasts = [t.last_ns for t in tiers.values() if t.last_ns is not None]
    return CatalogEntry(
        host=host,
        labels=dict(labels) if labels is not None else dict(previous.labels if previous else {}),
        user_labels=dict(previous.user_labels) if previous else {},
        first_ns=min(firsts) if firsts else None,
        last_ns=max(lasts) if lasts else None,
        tiers=dict(sorted(tiers.items())),
        metrics=sorted(metrics),
        fingerprints=sorted(fingerprints),
    )


def entry_from_segments(
    host: str,
    segments: Iterable[IndexSegment],
    *,
    labels: Mapping[str, str] | None = None,
    previous: CatalogEntry | None = None,
) -> CatalogEntry:
    """A catalog entry rebuilt from raw index segments alone (no data object is read)."""
    items = [(seg.metric_names(e), e) for seg in segments for e in seg.entries]
    return entry_from_index(host, items, labels=labels, previous=previous)


Mutation = Callable[[CatalogEntry], CatalogEntry]


class Catalog:
    """The fleet catalog on an ``ObjectStore``: read entries, update them without losing writes.

    ``clock``, ``rng`` and ``sleep`` are injectable so tests control time and jitter.
    """

    def __init__(
        self,
        objects: ObjectStore,
        *,
        max_attempts: int = 100,
        backoff_base_s: float = 0.005,
        backoff_cap_s: float = 0.25,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.objects = objects
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"Catalog({self.objects.description!r})"

    def hosts(self) -> list[str]:
        """Every host with a catalog entry, sorted (one listing); a key whose name is no
        host id is skipped with a warning."""
        out = []
        for info in self.objects.list(CATALOG_PREFIX):
            name = info.key[len(CATALOG_PREFIX) :]
            if name.endswith(".json") and "/" not in name:
                try:
                    out.append(validate_host(name[:-5]))
                except ValidationError:
                    log.warning("catalog: %s is not a host's entry; skipped", info.key)
        return sorted(out)

    def get_versioned(self, host: str) -> tuple[CatalogEntry, str] | None:
        """The entry of ``host`` and its ETag, or ``None``. Raises ``CorruptError``."""
        key = catalog_key(host)
        try:
            got = self.objects.get(key)
        except ObjectNotFound:
            return None
        return _parse(host, key, got.data), got.etag

    def get(self, host: str) -> CatalogEntry | None:
        """The entry of ``host``, or ``None`` when it has none. Raises ``CorruptError``."""
        found = self.get_versioned(host)
        return found[0] if found else None

    def read(self, host: str) -> CatalogEntry | None:
        """The entry of ``host``, or ``None`` when it has none or it is unreadable (then a
        warning names its key: ``verify`` reports it, ``hosts --refresh`` rebuilds it)."""
        try:
            return self.get(host)
        except CorruptError as exc:
            log.warning(
                "catalog entry %s is unreadable and skipped (%s); rebuild it with "
                "snapcloud hosts --refresh",
                catalog_key(host),
                exc.message,
            )
            return None

    def entries(
        self, hosts: Iterable[str] | None = None, *, workers: int = 16
    ) -> list[CatalogEntry]:
        """The readable entries of ``hosts`` (default: every catalogued host), read in
        parallel; unreadable ones are skipped with a warning (``read``)."""
        names = self.hosts() if hosts is None else list(hosts)
        if not names:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
            found = list(pool.map(self.read, names))
        return [e for e in found if e is not None]

    def update(self, host: str, mutate: Mutation) -> CatalogEntry:
        """Apply ``mutate`` to the current entry (a fresh one if none) and store the result.

        ``mutate`` gets a private copy and may be called several times: when another
        writer changed the entry in between, it is reapplied to the newer version.
        Raises ``ConflictError`` after ``max_attempts`` lost races.
        """
        validate_host(host)
        key = catalog_key(host)
        for attempt in range(self.max_attempts):
            found = self._current(host, key)
            current = found[0] if found else CatalogEntry(host=host)
            new = mutate(current.model_copy(deep=True))
            if new.host != host:
                raise ConflictError(f"catalog update for {host!r} returned host {new.host!r}")
            new.updated_ns = self._clock()
            try:
                if found is None:
                    self.objects.put(key, new.to_bytes(), if_absent=True)
                else:
                    self.objects.put(key, new.to_bytes(), if_match=found[1])
                return new
            except PreconditionFailed:
                delay = self._rng.uniform(
                    0.0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt)
                )
                log.debug("catalog %s changed under us (attempt %d); retrying", key, attempt + 1)
                self._sleep(delay)
        raise ConflictError(
            f"catalog entry {key} kept changing: gave up after {self.max_attempts} attempts",
            key=key,
            host=host,
        )

    def _current(self, host: str, key: str) -> tuple[CatalogEntry, str] | None:
        """The entry to update and its ETag; an unreadable one is replaced by a fresh
        entry (its user labels cannot be read back: a warning says so)."""
        try:
            got = self.objects.get(key)
        except ObjectNotFound:
            return None
        try:
            return _parse(host, key, got.data), got.etag
        except CorruptError as exc:
            log.warning(
                "catalog entry %s is unreadable (%s): replacing it; user labels it held are lost",
                key,
                exc.message,
            )
            return CatalogEntry(host=host), got.etag

    def refresh(
        self,
        host: str,
        items: Iterable[tuple[Sequence[str], IndexEntry]]
        | Callable[[], Iterable[tuple[Sequence[str], IndexEntry]]],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> CatalogEntry:
        """Rebuild ``host``'s statistics from ``(metric names, index entry)`` pairs of every
        tier (see ``entry_from_index``), keeping its user labels.

        Pass a callable to read the index inside each attempt, after the entry it
        replaces was read: then a refresher holding an older view of the index can
        never overwrite the statistics of one that read a newer view.
        """
        fixed = None if callable(items) else list(items)

        def rebuild(current: CatalogEntry) -> CatalogEntry:
            pairs = fixed if fixed is not None else list(items())  # type: ignore[operator]
            return entry_from_index(host, pairs, labels=labels, previous=current)

        return self.update(host, rebuild)

    def set_user_labels(self, host: str, labels: Mapping[str, str | None]) -> CatalogEntry:
        """Set user labels of ``host`` (a ``None`` value removes that label)."""
        for name, value in labels.items():
            validate_metric_name(name, "labels")
            if value is not None and (
                not isinstance(value, str)
                or len(value) > LABEL_VALUE_MAX_LEN
                or any(ord(c) < 32 or ord(c) == 127 for c in value)
            ):
                raise ValidationError(
                    f"labels[{name!r}]: expected text of at most {LABEL_VALUE_MAX_LEN} "
                    "characters without control characters",
                    field="labels",
                )

        def apply(current: CatalogEntry) -> CatalogEntry:
            for name, value in labels.items():
                if value is None:
                    current.user_labels.pop(name, None)
                else:
                    current.user_labels[name] = value
            current.user_labels = dict(sorted(current.user_labels.items()))
            return current

        return self.update(host, apply)

    def delete(self, host: str) -> None:
        """Remove ``host``'s entry (missing is not an error)."""
        self.objects.delete(catalog_key(host))


def _parse(host: str, key: str, data: bytes) -> CatalogEntry:
    """Check an entry's bytes and that it names ``host``; raises ``CorruptError``."""
    entry = CatalogEntry.from_bytes(data, key=key)
    if entry.host != host:
        raise ChecksumMismatch(f"catalog entry at {key} names host {entry.host!r}", key=key)
    return entry
