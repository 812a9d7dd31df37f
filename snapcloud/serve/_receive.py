"""Prometheus remote write 1.0 into the store: ``snapcloud serve --receive``.

A request (a snappy-compressed ``prometheus.WriteRequest``, decoded with the classes
generated from Prometheus's own ``prompb`` definitions) is answered 204 only once its
samples are on local disk, fsynced, in the host's spool (``snapcloud.recorder.Spool``,
the recorder's): a receiver killed after a 204 uploads them when it starts again.

- One stream per host: the ``host`` label, else ``instance`` without its port
  (``node7:9400`` -> ``node7``), checked by ``validate_host``.
- Names: the scrape collector's mapping (``collectors.scrape.exposition_name``), with
  the family and kind from the series name (``untyped_family``) and the job from the
  instance's port as scrape does (9400 -> ``dcgm``, 9100 -> ``node``), else the ``job``
  label. ``job``, ``instance`` and ``host`` are not part of the name.
- A family with more than ``max_series_per_family`` series on a host keeps the first
  ones and drops the rest, with one warning per family (as scrape).
- An uploader thread moves each host's spooled requests into the store every
  ``flush_s`` under the host's writer lease: merged, each (metric, timestamp, value
  bits) once, cut into windows, and appended with ``importers.append_windows``, which
  stores only samples the stream does not hold. So out-of-order requests, a request
  Prometheus sent twice, and a spool uploaded again after a crash store each sample once.
- 400 (``Rejected``) for a request that can never succeed; 503 (``Unavailable``) when the
  spool is over its bound (the store has been failing), 500 when the spool cannot be
  written: Prometheus retries 5xx, with backoff, and drops 4xx.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapcloud.collectors import SampleKind
from snapcloud.collectors.scrape import (
    exposition_name,
    family_kind,
    family_unit,
    safe_part,
    untyped_family,
)
from snapcloud.coordination import Lease, dead_local_holder, default_owner
from snapcloud.errors import LeaseHeld, SnapcloudError, ValidationError
from snapcloud.importers import append_windows, cut_windows
from snapcloud.layout import lease_key
from snapcloud.models import MetricSeries, ProfileSnapshot, validate_host, validate_metric_name
from snapcloud.recorder import Spool
from snapcloud.store import Repository

__all__ = ["ReceiveConfig", "ReceiveStats", "Receiver", "Rejected", "Unavailable"]

_log = logging.getLogger("snapcloud.serve.receive")

_PORT_JOBS = {"9400": "dcgm", "9100": "node"}  # as scrape.parse_target names targets
_NOT_IN_NAME = frozenset({"__name__", "job", "instance", "host"})
_MS = 1_000_000
_MEMO_MAX = 1 << 20  # label sets remembered (then forgotten at once and relearned)


class Rejected(ValidationError):
    """A write request that can never succeed (HTTP 400, 415 for an encoding or content
    type not taken; Prometheus does not retry either)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Unavailable(SnapcloudError):
    """A write request not taken now that may be later (HTTP 5xx; Prometheus retries it)."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReceiveConfig:
    """How the receiver spools and uploads.

    ``spool_dir``: one spool directory per host below it. ``window_s``: stored windows.
    ``flush_s``: seconds between uploads. ``max_spool_bytes``: past it, writes get 503.
    ``max_body_bytes``: compressed and decompressed size limit of one request.
    """

    spool_dir: Path
    window_s: float = 60.0
    flush_s: float = 30.0
    max_spool_bytes: int = 1 << 30
    max_body_bytes: int = 64 << 20
    max_series_per_family: int = 512

    @property
    def window_ns(self) -> int:
        return round(self.window_s * 1e9)


@dataclass
class ReceiveStats:
    """Counts since start: requests answered 204, 400 and 5xx, samples spooled and
    uploaded, series dropped by the cardinality cap, failed upload passes."""

    requests: int = 0
    rejected: int = 0
    unavailable: int = 0
    samples_spooled: int = 0
    samples_uploaded: int = 0
    samples_already_stored: int = 0
    series_dropped: int = 0
    upload_failures: int = 0
    last_upload_error: str | None = None


@dataclass
class _Host:
    spool: Spool
    lease: Lease
    families: dict[str, set[str]] = field(default_factory=dict)  # family -> names admitted
    warned: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)
    catalog_labels: dict[str, str] | None = None  # what the catalog was last refreshed with
    held_warned: bool = False


@dataclass(frozen=True)
class _Mapped:
    """What one series' label set maps to (``name`` ``None``: dropped by the cap)."""

    host: str
    name: str | None
    kind: SampleKind
    unit: str
    host_labels: dict[str, str]


@dataclass
class _Batch:
    """One host's samples of one request: metric -> (kind, unit, timestamps, values)."""

    series: dict[str, tuple[SampleKind, str, list[int], list[float]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _host_of(labels: Mapping[str, str]) -> tuple[str, str]:
    """``(host, port)`` of a series: its ``host`` label, else ``instance`` less its port."""
    host = labels.get("host", "")
    if host:
        return host, ""
    inst = labels.get("instance", "")
    if inst.startswith("["):  # [v6]:port
        addr, _, rest = inst[1:].partition("]")
        return addr.replace(":", "-"), rest.removeprefix(":")
    name, sep, port = inst.rpartition(":")
    if sep and port.isdigit() and name:
        return name, port
    return inst, ""


def _job_of(labels: Mapping[str, str], port: str) -> str:
    job = _PORT_JOBS.get(port) or safe_part(labels.get("job", "")).strip("_-")
    return job or "remote"


class Receiver:
    """Takes remote-write requests into per-host spools and uploads them (module doc)."""

    def __init__(
        self,
        repo: Repository,
        config: ReceiveConfig,
        *,
        owner: str | None = None,
        on_upload: threading.Event | None = None,
    ) -> None:
        from snapcloud.serve._prompb import remote_pb2  # needs protobuf

        self._pb: Any = remote_pb2
        self.repo = repo
        self.config = config
        self.owner = owner or default_owner()
        self.stats = ReceiveStats()
        self._hosts: dict[str, _Host] = {}
        self._memo: dict[tuple[tuple[str, str], ...], _Mapped] = {}
        self._lock = threading.Lock()  # hosts, caps, stats
        self._upload_lock = threading.Lock()  # one upload pass at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = on_upload or threading.Event()
        config.spool_dir.mkdir(parents=True, exist_ok=True)
        # One receiver per spool directory (each host's Spool also locks its own).
        try:
            self._root_lock = Spool(config.spool_dir / ".receiver")
        except LeaseHeld:
            raise LeaseHeld(
                f"remote-write spool {config.spool_dir} is in use by another receiver; stop "
                "it or use another --receive-spool",
                path=str(config.spool_dir),
            ) from None
        for d in sorted(config.spool_dir.iterdir()):
            if d.is_dir() and not d.name.startswith("."):
                try:
                    self._host(validate_host(d.name))
                except ValidationError:
                    _log.warning("spool %s: not a host directory; left alone", d)

    # ------------------------------------------------------------------ hosts

    def _host(self, host: str) -> _Host:
        got = self._hosts.get(host)
        if got is None:
            ttl = max(60.0, 3 * self.config.flush_s)
            lease = Lease(self.repo.objects, lease_key(host), self.owner, ttl_s=ttl)
            got = self._hosts[host] = _Host(Spool(self.config.spool_dir / host), lease)
        return got

    @property
    def spool_bytes(self) -> int:
        with self._lock:
            return sum(h.spool.size_bytes for h in self._hosts.values())

    @property
    def pending(self) -> int:
        """Spooled requests (per host) not uploaded yet."""
        with self._lock:
            return sum(len(h.spool) for h in self._hosts.values())

    # ------------------------------------------------------------------ write

    def write(self, body: bytes, headers: Mapping[str, str]) -> int:
        """Decode, map and spool one request (fsynced); return the samples it held.
        Raises ``Rejected`` (400) or ``Unavailable`` (5xx)."""
        try:
            request = self._decode(body, headers)
            snaps = [_snapshot(host, batch) for host, batch in self._batches(request).items()]
        except Rejected:
            with self._lock:
                self.stats.rejected += 1
            raise
        if self.spool_bytes > self.config.max_spool_bytes:
            with self._lock:
                self.stats.unavailable += 1
            raise Unavailable(
                f"the spool holds over {self.config.max_spool_bytes} bytes not yet in the "
                f"store ({self.stats.last_upload_error or 'uploads are behind'}); retry later"
            )
        count = 0
        try:
            for snap in snaps:
                if snap is not None:
                    with self._lock:
                        h = self._host(snap.host)
                    h.spool.put(snap)
                    count += snap.sample_count
        except (OSError, LeaseHeld) as exc:
            with self._lock:
                self.stats.unavailable += 1
            raise Unavailable(f"the spool could not be written: {exc}", status=500) from exc
        with self._lock:
            self.stats.requests += 1
            self.stats.samples_spooled += count
        return count

    def _decode(self, body: bytes, headers: Mapping[str, str]) -> object:
        import cramjam
        from google.protobuf.message import DecodeError

        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding != "snappy":
            raise Rejected(
                f"Content-Encoding must be snappy (remote write 1.0), not {encoding or 'none'!r}",
                status=415,
            )
        ctype = headers.get("content-type", "").split(";")
        proto = [p.strip() for p in ctype[1:] if p.strip().startswith("proto=")]
        if ctype[0].strip().lower() != "application/x-protobuf" or proto not in (
            [],
            ["proto=prometheus.WriteRequest"],
        ):
            raise Rejected(
                "Content-Type must be application/x-protobuf (remote write 1.0, "
                f"prometheus.WriteRequest), not {headers.get('content-type', '')!r}",
                status=415,
            )
        version = headers.get("x-prometheus-remote-write-version", "0.1.0").strip()
        if not version.startswith("0.1."):
            raise Rejected(f"remote write version {version!r} is not supported (0.1.0 is)")
        if len(body) > self.config.max_body_bytes:
            raise Rejected(f"body of {len(body)} bytes is over {self.config.max_body_bytes}")
        try:
            size = cramjam.snappy.decompress_raw_len(body)
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise Rejected(f"body is not snappy block format: {exc}") from None
        if size > self.config.max_body_bytes:
            raise Rejected(f"body decompresses to {size} bytes, over the limit")
        try:
            raw = bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:
            raise Rejected(f"body is not snappy block format: {exc}") from None
        request = self._pb.WriteRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            raise Rejected(f"body is not a prometheus.WriteRequest protobuf: {exc}") from None
        return request

    def _batches(self, request: object) -> dict[str, _Batch]:
        """The request's float samples by host, mapped; raises ``Rejected``. What a label
        set maps to is kept (``_memo``): Prometheus sends the same series every scrape."""
        batches: dict[str, _Batch] = {}
        dropped = 0
        memo = self._memo
        for i, ts in enumerate(request.timeseries):  # type: ignore[attr-defined]
            key = tuple([(label.name, label.value) for label in ts.labels])
            got = memo.get(key)
            if got is None:
                got = self._map(i, key)
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = got
            if ts.histograms:
                raise Rejected(
                    f"series {dict(key).get('__name__')!r}: native histograms are not "
                    "supported (send classic histograms: send_native_histograms: false)"
                )
            if got.name is None:
                dropped += 1
                continue
            if not ts.samples:
                continue
            batch = batches.get(got.host)
            if batch is None:
                batch = batches[got.host] = _Batch()
            if got.host_labels:
                batch.labels.update(got.host_labels)
            series = batch.series.get(got.name)
            if series is None:
                series = batch.series[got.name] = (got.kind, got.unit, [], [])
            stamps, values = series[2], series[3]
            for smp in ts.samples:
                stamps.append(smp.timestamp * _MS)
                values.append(smp.value)
        if dropped:
            with self._lock:
                self.stats.series_dropped += dropped
        return batches

    def _map(self, i: int, key: tuple[tuple[str, str], ...]) -> _Mapped:
        """What the label set ``key`` of series ``i`` maps to: its host, and its name (the
        scrape collector's mapping; ``None`` when over its family's cap)."""
        labels: dict[str, str] = {}
        for name, value in key:
            if name in labels:
                raise Rejected(f"series {i}: label {name!r} appears twice")
            if value:  # an empty value is no label, as in Prometheus
                labels[name] = value
        sample = labels.get("__name__", "")
        if not sample:
            raise Rejected(f"series {i} has no __name__ label")
        host, port = _host_of(labels)
        if not host:
            raise Rejected(
                f"series {sample!r} has neither a host nor an instance label (one stream "
                "per host: add one, e.g. with write_relabel_configs)"
            )
        try:
            validate_host(host, "host")
        except ValidationError as exc:
            raise Rejected(f"series {sample!r}: {exc}") from None
        job = _job_of(labels, port)
        own = {k: v for k, v in labels.items() if k not in _NOT_IN_NAME}
        family, ftype = untyped_family(sample, own)
        kind = family_kind(ftype, sample, family)
        host_labels: dict[str, str] = {}
        name, kind, unit, family = exposition_name(
            job, sample, family, kind, family_unit(family, ""), own, host_labels
        )
        try:
            validate_metric_name(name, "name")
        except ValidationError as exc:
            raise Rejected(f"series {sample!r} maps to a bad name: {exc}") from None
        admitted = self._admit(host, family, name, job)  # the cap only grows: kept as is
        return _Mapped(host, name if admitted else None, kind, unit, host_labels)

    def _admit(self, host: str, family: str, name: str, job: str) -> bool:
        """Whether ``name`` fits under its family's cap on ``host`` (warns once if not)."""
        with self._lock:
            h = self._hosts.get(host)
            if h is None:
                try:
                    h = self._host(host)
                except (OSError, LeaseHeld) as exc:
                    raise Unavailable(f"spool of {host!r}: {exc}", status=500) from exc
            names = h.families.setdefault(family, set())
            if name in names:
                return True
            if len(names) < self.config.max_series_per_family:
                names.add(name)
                return True
            if family not in h.warned:
                h.warned.add(family)
                _log.warning(
                    "remote write %s (host %s): family %s has more than %d series; the rest "
                    "are dropped",
                    job,
                    host,
                    family,
                    self.config.max_series_per_family,
                )
            return False

    # ------------------------------------------------------------------ upload

    def upload(self) -> int:
        """One pass: every host's spooled requests into the store; return samples stored.
        A host whose upload fails keeps its spool for the next pass."""
        stored = 0
        with self._upload_lock:
            with self._lock:
                hosts = list(self._hosts.items())
            for host, h in hosts:
                if not len(h.spool):
                    continue
                try:
                    stored += self._upload_host(host, h)
                except (SnapcloudError, OSError) as exc:
                    with self._lock:
                        self.stats.upload_failures += 1
                        self.stats.last_upload_error = f"host {host}: {exc}"
                    _log.warning(
                        "remote write: upload of host %s failed (%s); kept spooled", host, exc
                    )
        if stored:
            _log.info("remote write: %d new samples stored", stored)
        self.uploaded.set()
        return stored

    def _upload_host(self, host: str, h: _Host) -> int:
        paths = []
        snaps = []
        size = 0
        for path in h.spool.pending():
            snap = h.spool.load(path)
            paths.append(path)
            if snap is not None:
                snaps.append(snap)
                with contextlib.suppress(OSError):
                    size += path.stat().st_size
            if size > 64 << 20:  # a pass takes at most ~64 MiB of spool per host
                break
        series, labels = _merge(snaps)
        windows = cut_windows(
            host,
            series,
            window_ns=self.config.window_ns,
            labels=labels,
            metadata={"source": "remote_write"},
        )
        if windows:
            try:
                if h.lease.valid():
                    h.lease.keep()
                else:
                    h.lease.acquire(steal_if=dead_local_holder)
            except LeaseHeld as exc:
                if not h.held_warned:
                    _log.warning(
                        "remote write: host %s has another writer (%s); its samples stay "
                        "spooled until the lease is free",
                        host,
                        exc,
                    )
                h.held_warned = True
                raise
            h.held_warned = False
            stream = self.repo.stream(host, create=True)
            done = append_windows(stream, windows)
            if h.catalog_labels != labels:
                self.repo.refresh_catalog(host)
                h.catalog_labels = labels
            new = sum(e.samples for e in done.appended)
            with self._lock:
                self.stats.samples_uploaded += new
                self.stats.samples_already_stored += done.samples_already_stored
        else:
            new = 0
        for path in paths:
            h.spool.remove(path)
        return new

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        """Upload on a daemon thread every ``flush_s`` (and on ``flush``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="snapcloud-receive", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(
                self.config.flush_s
                if not failures
                else min(self.config.flush_s, 2.0 ** min(failures, 5))
            )
            self._wake.clear()
            before = self.stats.upload_failures
            try:
                self.upload()
            except Exception:  # the thread must go on: what is spooled stays spooled
                _log.exception("remote write: upload pass failed")
                with self._lock:
                    self.stats.upload_failures += 1
            failures = failures + 1 if self.stats.upload_failures > before else 0

    def flush(self, timeout: float = 30.0) -> bool:
        """Upload now (on the thread when started); whether the spool is then empty."""
        if self._thread is None:
            self.upload()
            return self.pending == 0
        self.uploaded.clear()
        self._wake.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.uploaded.wait(max(0.0, deadline - time.monotonic())):
                return self.pending == 0
        return False

    def close(self, timeout: float = 10.0) -> None:
        """A last upload pass, then stop: what it could not upload stays spooled. Only the
        first call does anything."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(Exception):
            self.upload()
        with self._lock:
            hosts = list(self._hosts.values())
        for h in hosts:
            with contextlib.suppress(SnapcloudError, OSError):
                h.lease.release()
            h.spool.close()
        self._root_lock.close()


def _snapshot(host: str, batch: _Batch) -> ProfileSnapshot | None:
    """One host's samples of a request as one snapshot (each metric in time order) for
    the spool; ``None`` when it holds none. Raises ``Rejected`` for a timestamp past
    int64 nanoseconds or a label value that is no label value."""
    metrics = []
    for name, (kind, unit, stamps, values) in batch.series.items():
        try:
            ts = np.asarray(stamps, dtype=np.int64)
        except OverflowError:
            raise Rejected(f"series {name!r}: a timestamp is out of range") from None
        vs = np.asarray(values, dtype=np.float64)
        if ts.size > 1:
            order = np.argsort(ts, kind="stable")
            ts, vs = ts[order], vs[order]
        metrics.append(MetricSeries.trusted(name, kind, unit, ts, vs))
    if not metrics:
        return None
    lo = min(int(m.timestamps[0]) for m in metrics)
    hi = max(int(m.timestamps[-1]) for m in metrics)
    try:
        return ProfileSnapshot(
            host,
            metrics,
            window_start=lo,
            window_end=hi + 1,
            labels=batch.labels,
            metadata={"source": "remote_write"},
        )
    except ValidationError as exc:
        raise Rejected(f"host {host!r}: {exc}") from None


def _merge(snaps: list[ProfileSnapshot]) -> tuple[list[MetricSeries], dict[str, str]]:
    """Spooled requests as one series per metric, in time order, each (timestamp, value
    bits) once: a request Prometheus sent twice, or a sample it resent, counts once."""
    parts: dict[str, list[MetricSeries]] = {}
    labels: dict[str, str] = {}
    for snap in snaps:
        labels.update(snap.labels)
        for m in snap.metrics:
            parts.setdefault(m.name, []).append(m)
    out = []
    for name, ms in parts.items():
        ts = np.concatenate([m.timestamps for m in ms])
        bits = np.concatenate([m.values.view(np.int64) for m in ms])
        pairs = np.stack([ts, bits], axis=1)
        uniq = np.unique(pairs, axis=0)  # sorted by timestamp, then bits
        values = np.ascontiguousarray(uniq[:, 1]).view(np.float64)
        stamps = np.ascontiguousarray(uniq[:, 0])
        out.append(MetricSeries.trusted(name, ms[0].kind, ms[0].unit, stamps, values))
    return out, labels
