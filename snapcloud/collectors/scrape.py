"""Drop-in ingest: samples from the Prometheus expositions of local exporters.

``ScrapeCollector`` reads each target (a dcgm-exporter at ``:9400/metrics``, a
node_exporter at ``:9100/metrics``, any exporter) once per tick, parses the text
format (or OpenMetrics, by the response's content type) with ``prometheus_client``'s
parsers, and returns the samples under snapcloud names (docs/SCRAPE.md has the table):

- dcgm-exporter fields with a native equivalent of identical meaning and unit take
  the native name (``DCGM_FI_DEV_GPU_TEMP{gpu="0"}`` -> ``gpu.0.temp_c``); others keep
  their unit in the name (``DCGM_FI_DEV_POWER_USAGE`` -> ``gpu.0.power_w``) or become
  ``gpu.<i>.dcgm.<field>``. Its ``UUID``, ``modelName``, ``pci_bus_id``, ``pod``,
  ``namespace`` and ``container`` labels become host-stream labels ``gpu.<i>.<label>``.
- node_exporter's load and memory gauges take the native names (``node_load1`` ->
  ``load.1``); everything else, from any target, is ``<job>.<sample name>`` plus
  ``.<label>.<value>`` for each label in name order (values made name-safe), with a
  counter's ``_total`` dropped (``snapcloud serve`` adds it back).
- A series that disappears from a target, or every series of a target whose scrape
  fails, gets one Prometheus staleness marker (a NaN with its exact bits).
- A family with more than ``max_series_per_family`` series keeps the first ones
  and drops the rest, with one warning per family, counted in ``scrape.<job>.dropped``.
- ``scrape.<job>.up`` (1/0), ``scrape.<job>.failures`` (counter) and
  ``scrape.<job>.duration_ms`` describe each target; a failed or timed-out target
  never stops the others.

Parsing memoizes the library's own result per series line: when a scrape's comment
lines equal the last fully parsed scrape's and every sample line's text before its
value was seen there, only the values are read (``float``); anything else is parsed
again in full. Why: ``prometheus_client``'s parser takes ~86 ms for a 496-series
dcgm-exporter page, 8.6% of a core at 1 Hz (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import re
import struct
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from snapcloud.collectors._base import Sample, SampleKind
from snapcloud.errors import ValidationError

__all__ = [
    "DCGM_FIELDS",
    "STALE_NAN",
    "ScrapeCollector",
    "ScrapeTarget",
    "exposition_name",
    "family_kind",
    "family_unit",
    "parse_target",
    "safe_part",
    "untyped_family",
]

_log = logging.getLogger(__name__)

STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_JOB = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

#: dcgm-exporter field -> (snapcloud field of gpu.<i>, unit); native names where identical.
DCGM_FIELDS: dict[str, tuple[str, str]] = {
    "DCGM_FI_DEV_GPU_TEMP": ("temp_c", "C"),
    "DCGM_FI_DEV_MEMORY_TEMP": ("mem_temp_c", "C"),
    "DCGM_FI_DEV_GPU_UTIL": ("util_pct", "%"),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("mem_util_pct", "%"),
    "DCGM_FI_DEV_ENC_UTIL": ("enc_util_pct", "%"),
    "DCGM_FI_DEV_DEC_UTIL": ("dec_util_pct", "%"),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_mhz", "MHz"),
    "DCGM_FI_DEV_MEM_CLOCK": ("mem_clock_mhz", "MHz"),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy_mj", "mJ"),
    "DCGM_FI_DEV_POWER_USAGE": ("power_w", "W"),
    "DCGM_FI_DEV_FB_USED": ("fb_used_mib", "MiB"),
    "DCGM_FI_DEV_FB_FREE": ("fb_free_mib", "MiB"),
    "DCGM_FI_DEV_XID_ERRORS": ("xid_last", "xid"),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("clock_event_reasons", "bitmask"),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": ("clock_event_reasons", "bitmask"),
}
#: dcgm-exporter labels kept as host-stream labels gpu.<i>.<name>.
DCGM_LABELS = {
    "UUID": "uuid",
    "modelName": "name",
    "pci_bus_id": "pci_bus_id",
    "pod": "pod",
    "namespace": "namespace",
    "container": "container",
}
_NODE_NATIVE: dict[str, tuple[str, str]] = {
    "node_load1": ("load.1", ""),
    "node_load5": ("load.5", ""),
    "node_load15": ("load.15", ""),
    "node_memory_MemAvailable_bytes": ("mem.available", "bytes"),
    "node_memory_MemTotal_bytes": ("mem.total", "bytes"),
}
_UNITS = (("_bytes", "bytes"), ("_seconds", "s"), ("_celsius", "C"), ("_joules", "J"))


@dataclass(frozen=True)
class ScrapeTarget:
    """One exporter: a job name (the prefix of its generic names) and its URL."""

    job: str
    url: str


def parse_target(text: str, position: int = 0) -> ScrapeTarget:
    """``URL`` or ``JOB=URL``; without a job, ``dcgm`` for port 9400, ``node`` for 9100,
    else ``scrape<position>``. Raises ``ValidationError``."""
    job, sep, url = text.partition("=")
    if not sep or "://" in job:
        job, url = "", text
    if not url.startswith(("http://", "https://")):
        raise ValidationError(f"--scrape: {text!r} is not an http(s) URL", field="scrape")
    if not job:
        port = re.search(r"://[^/]*:(\d+)", url)
        job = {"9400": "dcgm", "9100": "node"}.get(port.group(1) if port else "", "")
        job = job or f"scrape{position}"
    if not _JOB.fullmatch(job):
        raise ValidationError(f"--scrape: job name {job!r} is not a name", field="scrape")
    return ScrapeTarget(job, url)


def safe_part(value: str) -> str:
    """``value`` as one part of a snapcloud name: runs outside ``[A-Za-z0-9_-]`` -> ``_``."""
    return _UNSAFE.sub("_", value) or "_"


def family_kind(family_type: str, sample_name: str, family: str) -> SampleKind:
    """A sample's kind from its family's type: counters, and a histogram's or summary's
    ``_bucket``, ``_count`` and ``_sum``, are counters; the rest gauges."""
    if family_type == "counter":
        return "counter"
    if family_type in ("histogram", "gaugehistogram", "summary"):
        suffix = sample_name[len(family) :]
        return "counter" if suffix in ("_bucket", "_count", "_sum") else "gauge"
    return "gauge"


def family_unit(family: str, declared: str) -> str:
    """The declared unit, else one the family's name says (``_bytes``, ``_seconds``...)."""
    if declared:
        return declared
    for suffix, unit in _UNITS:
        if suffix in family:
            return unit
    return ""


@dataclass
class _Line:
    """What the library parsed from one sample line: enough to name it again."""

    name: str  # snapcloud name ("" for a dropped series)
    kind: SampleKind
    unit: str
    family: str


@dataclass
class _TargetState:
    target: ScrapeTarget
    comments: tuple[str, ...] = ()
    lines: dict[str, _Line] = field(default_factory=dict)  # text before the value -> line
    seen: set[str] = field(default_factory=set)  # names reported by the last good scrape
    labels: dict[str, str] = field(default_factory=dict)
    failures: int = 0
    dropped: int = 0
    warned: set[str] = field(default_factory=set)
    failing: bool = False


Fetch = Callable[[str, float], tuple[str, str]]


def _fetch(url: str, timeout: float) -> tuple[str, str]:
    req = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read(64 * 2**20 + 1)
        if len(body) > 64 * 2**20:
            raise ValueError("exposition over 64 MiB")
        return body.decode("utf-8"), resp.headers.get("Content-Type", "")


class ScrapeCollector:
    """Samples the expositions of ``targets`` each tick (see the module doc).

    ``fetch(url, timeout) -> (text, content type)`` is injectable for tests; the
    default uses ``urllib`` with ``timeout_s``. Targets are fetched in parallel.
    """

    name = "scrape"

    def __init__(
        self,
        targets: Iterable[ScrapeTarget | str],
        *,
        timeout_s: float = 2.0,
        max_series_per_family: int = 512,
        fetch: Fetch | None = None,
    ) -> None:
        self.targets = [
            t if isinstance(t, ScrapeTarget) else parse_target(t, i) for i, t in enumerate(targets)
        ]
        jobs = [t.job for t in self.targets]
        if len(set(jobs)) != len(jobs):
            raise ValidationError(f"--scrape: job names repeat: {jobs}", field="scrape")
        if not self.targets:
            raise ValidationError("--scrape: no target", field="scrape")
        self.timeout_s = timeout_s
        self.max_series = max_series_per_family
        self._fetch = fetch or _fetch
        self._states = [_TargetState(t) for t in self.targets]
        self._pool = ThreadPoolExecutor(len(self.targets), thread_name_prefix="snapcloud-scrape")
        self.full_parses = 0

    def labels(self) -> dict[str, str]:
        """Labels the targets gave (dcgm-exporter's per-GPU ones) at their last scrape."""
        out: dict[str, str] = {}
        for st in self._states:
            out.update(st.labels)
        return out

    def collect(self) -> list[Sample]:
        """Scrape every target once; a failing target is counted, the others go on."""
        futures = [
            self._pool.submit(self._fetch, st.target.url, self.timeout_s) for st in self._states
        ]
        out: list[Sample] = []
        for st, fut in zip(self._states, futures, strict=True):
            job = st.target.job
            started = time.perf_counter()
            try:
                text, ctype = fut.result()
                samples = self._parse(st, text, ctype)
            except Exception as exc:  # a target must never stop the others or the recorder
                st.failures += 1
                if not st.failing:
                    _log.warning("scrape %s (%s) failed: %s", job, st.target.url, exc)
                st.failing = True
                out.extend(Sample(n, STALE_NAN, "gauge", "") for n in sorted(st.seen))
                st.seen = set()
                out.append(Sample(f"scrape.{job}.up", 0.0, "gauge", "bool"))
            else:
                if st.failing:
                    _log.info("scrape %s works again", job)
                st.failing = False
                names = {s.name for s in samples}
                out.extend(Sample(n, STALE_NAN, "gauge", "") for n in sorted(st.seen - names))
                st.seen = names
                out.extend(samples)
                out.append(Sample(f"scrape.{job}.up", 1.0, "gauge", "bool"))
            out.append(Sample(f"scrape.{job}.failures", float(st.failures), "counter", "count"))
            out.append(Sample(f"scrape.{job}.dropped", float(st.dropped), "gauge", "series"))
            ms = (time.perf_counter() - started) * 1e3
            out.append(Sample(f"scrape.{job}.duration_ms", ms, "gauge", "ms"))
        return out

    def close(self) -> None:
        """Stop the fetching threads; safe to call twice."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ parsing

    def _parse(self, st: _TargetState, text: str, ctype: str) -> list[Sample]:
        fast = self._fast(st, text)
        return fast if fast is not None else self._full(st, text, ctype)

    def _fast(self, st: _TargetState, text: str) -> list[Sample] | None:
        """The values of a scrape shaped as the last fully parsed one, else ``None``."""
        if not st.lines:
            return None
        comments = []
        out = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line[0] == "#":
                comments.append(line)
                continue
            head, _, value = line.rpartition(" ")
            known = st.lines.get(head)
            if known is None:
                return None
            try:
                v = float(value)
            except ValueError:
                return None
            if known.name:
                out.append(Sample(known.name, v, known.kind, known.unit))
        if tuple(c for c in comments if not c.startswith("# EOF")) != st.comments:
            return None
        return out

    def _full(self, st: _TargetState, text: str, ctype: str) -> list[Sample]:
        from prometheus_client.openmetrics.parser import (
            text_string_to_metric_families as openmetrics_families,
        )
        from prometheus_client.parser import text_string_to_metric_families

        self.full_parses += 1
        om = "application/openmetrics-text" in ctype
        parse: Callable[[str], Iterable[Any]] = (
            openmetrics_families if om else text_string_to_metric_families
        )
        families = list(parse(text))
        job = st.target.job
        labels: dict[str, str] = {}
        st.dropped = 0  # series dropped by this scrape (and the fast ones like it)
        counted: dict[str, int] = {}
        parsed: list[tuple[str, _Line]] = []
        out: list[Sample] = []
        for fam in families:
            for smp in fam.samples:
                line = self._name(st, job, fam, smp.name, smp.labels, labels, counted)
                parsed.append((smp.name, line))
                if line.name:
                    out.append(Sample(line.name, float(smp.value), line.kind, line.unit))
        # Remember each sample line's text before its value with what the library made of
        # it: the library yields samples in line order, checked name by name.
        heads = [ln.strip().rpartition(" ")[0] for ln in text.splitlines()]
        heads = [h for h, ln in zip(heads, text.splitlines(), strict=True) if _is_sample(ln)]
        st.lines = {}
        if len(heads) == len(parsed) and all(
            _same_name(h, name) for h, (name, _) in zip(heads, parsed, strict=True)
        ):
            st.lines = {h: line for h, (_, line) in zip(heads, parsed, strict=True)}
        st.comments = tuple(
            ln.strip()
            for ln in text.splitlines()
            if ln.strip().startswith("#") and not ln.strip().startswith("# EOF")
        )
        st.labels = labels
        return out

    def _name(
        self,
        st: _TargetState,
        job: str,
        fam: object,
        sample: str,
        sample_labels: dict[str, str],
        host_labels: dict[str, str],
        counted: dict[str, int],
    ) -> _Line:
        family = str(getattr(fam, "name", sample))
        ftype = str(getattr(fam, "type", "unknown"))
        kind = family_kind(ftype, sample, family)
        unit = family_unit(family, str(getattr(fam, "unit", "") or ""))
        counted[family] = counted.get(family, 0) + 1
        if counted[family] > self.max_series:
            st.dropped += 1
            if family not in st.warned:
                st.warned.add(family)
                _log.warning(
                    "scrape %s: family %s has more than %d series; the rest are dropped",
                    job,
                    family,
                    self.max_series,
                )
            return _Line("", kind, unit, family)
        return _Line(*exposition_name(job, sample, family, kind, unit, sample_labels, host_labels))


#: The fields dcgm-exporter's etc/default-counters.csv types as counters (their names do
#: not end in ``_total``; an exposition's TYPE line says it, remote write does not).
_DCGM_COUNTERS = frozenset(
    "DCGM_FI_DEV_" + f
    for f in (
        "TOTAL_ENERGY_CONSUMPTION",
        "PCIE_TX_THROUGHPUT",
        "PCIE_RX_THROUGHPUT",
        "PCIE_REPLAY_COUNTER",
        "POWER_VIOLATION",
        "THERMAL_VIOLATION",
        "SYNC_BOOST_VIOLATION",
        "BOARD_LIMIT_VIOLATION",
        "LOW_UTIL_VIOLATION",
        "RELIABILITY_VIOLATION",
        "ECC_SBE_VOL_TOTAL",
        "ECC_DBE_VOL_TOTAL",
        "ECC_SBE_AGG_TOTAL",
        "ECC_DBE_AGG_TOTAL",
        "RETIRED_SBE",
        "RETIRED_DBE",
        "RETIRED_PENDING",
        "NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
        "NVLINK_REPLAY_ERROR_COUNT_TOTAL",
        "NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
        "NVLINK_BANDWIDTH_TOTAL",
        "UNCORRECTABLE_REMAPPED_ROWS",
        "CORRECTABLE_REMAPPED_ROWS",
    )
)


def untyped_family(sample: str, labels: dict[str, str]) -> tuple[str, str]:
    """``(family, type)`` of a sample seen without its exposition's comments (remote
    write sends none with the samples): dcgm-exporter's counters, a name ending in
    ``_total`` (a counter), ``_bucket`` with an ``le`` label (a histogram), ``_count`` or
    ``_sum`` (a histogram's or summary's), else a gauge of its own name."""
    if sample in _DCGM_COUNTERS:
        return sample, "counter"
    if sample.endswith("_total") and len(sample) > 6:
        return sample[:-6], "counter"
    if sample.endswith("_bucket") and "le" in labels:
        return sample[:-7], "histogram"
    for suffix in ("_count", "_sum"):
        if sample.endswith(suffix) and len(sample) > len(suffix):
            return sample[: -len(suffix)], "summary"
    return sample, "gauge"


def exposition_name(
    job: str,
    sample: str,
    family: str,
    kind: SampleKind,
    unit: str,
    sample_labels: dict[str, str],
    host_labels: dict[str, str],
) -> tuple[str, SampleKind, str, str]:
    """The snapcloud ``(name, kind, unit, family)`` of an exposition sample: ``sample`` of
    ``family`` (of ``kind``, with ``unit`` from its family) from job ``job``, labelled
    ``sample_labels`` (the target's own labels only). dcgm-exporter's per-GPU labels are
    added to ``host_labels``. The one mapping of exporter series to snapcloud names,
    shared by the scrape collector and the remote-write receiver (docs/SCRAPE.md)."""
    gpu = sample_labels.get("gpu")
    if sample == family + "_total" and family.startswith("DCGM_"):
        sample = family  # the library names a counter's sample ..._total
    if sample in DCGM_FIELDS and gpu is not None and gpu.isdigit():
        for label, key in DCGM_LABELS.items():
            if sample_labels.get(label):
                host_labels[f"gpu.{gpu}.{key}"] = sample_labels[label][:1024]
        if sample_labels.get("DCGM_FI_DRIVER_VERSION"):
            host_labels["driver_version"] = sample_labels["DCGM_FI_DRIVER_VERSION"]
        fld, unit = DCGM_FIELDS[sample]
        return f"gpu.{gpu}.{fld}", kind, unit, family
    if sample.startswith("DCGM_FI_") and gpu is not None and gpu.isdigit():
        fld = sample.removeprefix("DCGM_FI_").removeprefix("DEV_").lower()
        return f"gpu.{gpu}.dcgm.{safe_part(fld)}", kind, unit, family
    if sample in _NODE_NATIVE and not sample_labels:
        native, unit = _NODE_NATIVE[sample]
        return native, kind, unit, family
    base = sample
    if kind == "counter" and base.endswith("_total"):
        base = base[: -len("_total")]
    base = base.removeprefix(job + "_")
    parts = [job, safe_part(base)]
    for label in sorted(sample_labels):
        parts += [safe_part(label), safe_part(sample_labels[label])]
    return ".".join(parts)[:200], kind, unit, family


def _is_sample(line: str) -> bool:
    text = line.strip()
    return bool(text) and text[0] != "#"


def _same_name(head: str, name: str) -> bool:
    """Whether a line whose text before the value is ``head`` names sample ``name``."""
    written = head.split("{", 1)[0].strip()
    return written == name or written + "_total" == name or written == name + "_total"
