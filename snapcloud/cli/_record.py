"""The ``record`` command: run the recorder on this host until stopped."""

from __future__ import annotations

import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.highlighter import NullHighlighter
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from snapcloud.backends import secret_redacting_filter
from snapcloud.cli._app import (
    CONTEXT,
    cli,
    err,
    global_options,
    human_bytes,
    open_repo,
    print_json,
    settings,
)
from snapcloud.collectors import Collector, CpuCollector
from snapcloud.errors import BackendError, CorruptError, SnapcloudError, ValidationError
from snapcloud.models import validate_host, validate_metric_name
from snapcloud.recorder import (
    Recorder,
    RecorderConfig,
    RecorderStatus,
    RecordSummary,
    SealedWindow,
)
from snapcloud.retention import read_policy
from snapcloud.settings import RecordSettings, Settings
from snapcloud.store import Repository

log = logging.getLogger(__name__)

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"--label: {pair!r} is not KEY=VALUE", field="label")
        out[validate_metric_name(key.strip(), "--label")] = value
    return out


def _host(host: str | None) -> str:
    if host is not None:
        return validate_host(host, "--host")
    name = socket.gethostname()
    try:
        return validate_host(name, "hostname")
    except ValidationError as exc:
        raise ValidationError(
            f"this machine's hostname {name!r} cannot be a host id ({exc}); "
            "pass --host ID (letters, digits, '.', '_', '-')",
            field="host",
        ) from None


def _collectors(no_gpu: bool, opt_in: str) -> tuple[list[Collector], str | None]:
    collectors: list[Collector] = [CpuCollector()]
    if no_gpu:
        return collectors, "disabled by --no-gpu"
    from snapcloud.collectors import GpuCollector

    gpu = GpuCollector(opt_in={s.strip() for s in opt_in.split(",") if s.strip()})
    if gpu.available:
        collectors.append(gpu)
        return collectors, None
    gpu.close()
    return collectors, re.sub(r":\s*no GPU collector\s*$", "", gpu.reason)


def _status_text(st: RecorderStatus) -> Text:
    upload = (
        "never"
        if st.last_upload_ns is None
        else f"{max(0.0, (time.time_ns() - st.last_upload_ns) / 1e9):.0f} s ago"
    )
    line = (
        f"{st.host}: {st.ticks} samples, {st.windows} windows sealed, {st.uploaded} uploaded, "
        f"spool {st.pending} ({human_bytes(st.spool_bytes)}), last upload {upload}, "
        f"lease {st.lease}, {st.errors} errors"
    )
    if st.dropped:
        line += f", {st.dropped} dropped"
    if st.last_error and (st.errors or st.lease != "held"):
        line += f" (last: {st.last_error[:120]})"
    return Text(line)


def _window_doc(w: SealedWindow) -> dict[str, Any]:
    snap, st = w.snapshot, w.status
    meta = snap.metadata
    return {
        "host": snap.host,
        "spool_id": meta.get("spool_id"),
        "window_start_ns": snap.window_start,
        "window_end_ns": snap.window_end,
        "fingerprint": snap.fingerprint,
        "samples": meta.get("samples"),
        "metrics": len(snap.metrics),
        "late_ticks": meta.get("late_ticks"),
        "skipped_ticks": meta.get("skipped_ticks"),
        "spool_dropped": meta.get("spool_dropped"),
        "partial": meta.get("partial"),
        "spool_file": w.path.name,
        "spool_pending": st.pending,
        "spool_bytes": st.spool_bytes,
        "uploaded": st.uploaded,
    }


@contextmanager
def _logging(interactive: bool, debug: bool) -> Iterator[None]:
    """Log lines to stderr (through rich when interactive) for as long as the command runs."""
    handler: logging.Handler
    if interactive:
        handler = RichHandler(
            console=err, show_path=False, markup=False, highlighter=NullHighlighter()
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler.addFilter(secret_redacting_filter())  # --debug shows botocore's logs too
    root, ours = logging.getLogger(), logging.getLogger("snapcloud")
    saved = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    # Interactive: the status line shows the routine progress, so only problems are logged.
    ours.setLevel(logging.DEBUG if debug else logging.WARNING if interactive else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (seal, flush, exit); a second one aborts the flush."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logging.getLogger("snapcloud.record").info(
            "%s: sealing the window and flushing", signal.Signals(signum).name
        )
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _scrapers(urls: list[str], config: Path | None, timeout: float) -> list[Collector]:
    """A scrape collector for the ``--scrape`` targets and those listed in ``config``."""
    targets = list(urls)
    if config is not None:
        lines = config.read_text(encoding="utf-8").splitlines()
        targets += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not targets:
        return []
    try:
        from snapcloud.collectors.scrape import ScrapeCollector
    except ImportError as exc:  # pragma: no cover - the scrape extra is missing
        raise ValidationError(
            f"--scrape needs the scrape extra ({exc}): pip install 'snapcloud[scrape]'"
        ) from None
    return [ScrapeCollector(targets, timeout_s=timeout)]


def _refresh_catalog(repo: Repository, host: str) -> None:
    """Bring the host's fleet catalog entry up to date; a failure here loses no data."""
    try:
        repo.refresh_catalog(host)
    except SnapcloudError as exc:
        log.warning("catalog not refreshed for %s: %s", host, exc)


def _summary_line(s: RecordSummary) -> str:
    line = (
        f"recorded {s.host}: {s.ticks} samples, {s.windows} windows, {s.uploaded} uploaded "
        f"in {s.duration_s:.1f} s"
    )
    if s.late_ticks or s.skipped_ticks:
        line += f"; {s.late_ticks} late, {s.skipped_ticks} skipped ticks"
    if s.lost:
        line += (
            f"; {s.lost} window(s) LOST ({s.unspooled} not spooled: spool disk full or "
            f"failing, {s.dropped} dropped over the spool bound, {s.quarantined} quarantined)"
        )
    if s.pending:
        line += f"; {s.pending} snapshot(s) left in {s.spool_dir} for the next run"
    return line


def _open_for_recording(conf: Settings) -> Repository:
    """The store with its policy; a store that cannot be read now still gets recorded into
    (the spool holds the windows), with the default keyframe interval until restart."""
    repo = open_repo(conf, debug_logs=False, create=True)  # _logging sets up the log handlers
    try:
        stored = read_policy(repo.objects)
    except (BackendError, CorruptError) as exc:
        err.print(
            f"snapcloud: warning: store policy not read ({exc}); recording with the "
            "default keyframe interval",
            markup=False,
        )
        return repo
    if stored.stored:
        repo.config = stored.policy.snapshot_config(repo.config)
    return repo


def _default(name: str) -> str:
    """A record setting's built-in default, as ``--help`` shows it."""
    return str(RecordSettings.model_fields[name].default)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.001),
    metavar="SECONDS",
    show_default=_default("interval"),
    help="Seconds between samples.",
)
@click.option(
    "--window",
    type=click.FloatRange(min=0.001),
    metavar="SECONDS",
    show_default=_default("window"),
    help="Seconds per snapshot.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Stop after this many seconds (default: until stopped).",
)
@click.option(
    "--fingerprint", metavar="NAME", help="Workload name (default: from the busiest processes)."
)
@click.option(
    "--label",
    multiple=True,
    metavar="KEY=VALUE",
    help="Label on every snapshot (repeatable; added to the configured labels).",
)
@click.option("--host", metavar="ID", help="Host id (default: the hostname).")
@click.option(
    "--spool-dir",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Local spool (default: user cache dir/spool/HOST).",
)
@click.option(
    "--spool-max-bytes",
    metavar="SIZE",
    show_default="1GiB",
    help="Spool bound; the oldest snapshots go past it.",
)
@click.option(
    "--flush-timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    show_default=_default("flush_timeout"),
    help="Seconds to upload the spool at exit.",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    show_default=_default("lease_ttl"),
    help="Writer lease TTL.",
)
@click.option(
    "--gpu-opt-in",
    metavar="GROUPS",
    help="GPU field groups, comma-separated (default: processes if no --fingerprint).",
)
@click.option("--no-gpu", is_flag=True, help="Do not sample GPUs.")
@click.option(
    "--scrape",
    multiple=True,
    metavar="URL|JOB=URL",
    help="Also record an exporter's /metrics (repeatable; extra: scrape).",
)
@click.option(
    "--scrape-config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A file of scrape targets, one URL or JOB=URL a line.",
)
@click.option(
    "--scrape-timeout",
    type=click.FloatRange(min=0.01),
    default=2.0,
    metavar="SECONDS",
    help="Seconds per scrape.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per sealed window on stdout.")
@global_options
def record(
    interval: float | None,
    window: float | None,
    duration: float | None,
    fingerprint: str | None,
    label: tuple[str, ...],
    host: str | None,
    spool_dir: Path | None,
    spool_max_bytes: str | None,
    flush_timeout: float | None,
    lease_ttl: float | None,
    gpu_opt_in: str | None,
    no_gpu: bool,
    scrape: tuple[str, ...],
    scrape_config: Path | None,
    scrape_timeout: float,
    as_json: bool,
) -> int:
    """Sample this host's CPU and GPUs, seal a snapshot per window, upload through a spool.

    Unset options come from SNAPCLOUD_RECORD_* variables, then the config file's
    [record] table. Exit status: 0 every window stored; 1 windows wait in the spool for
    the next run (the store did not take them in time); 2 windows were lost, or an error.
    """
    given = {
        "interval": interval,
        "window": window,
        "fingerprint": fingerprint,
        "labels": _labels(label) if label else None,
        "host": host,
        "spool_dir": spool_dir,
        "spool_max_bytes": spool_max_bytes,
        "flush_timeout": flush_timeout,
        "lease_ttl": lease_ttl,
        "gpu_opt_in": gpu_opt_in,
        "gpu": False if no_gpu else None,
    }
    conf = settings(record=given)
    rec = conf.record
    host_id = _host(rec.host)
    config = RecorderConfig(
        interval_s=rec.interval,
        window_s=rec.window,
        fingerprint=rec.fingerprint,
        labels=rec.labels,
        spool_dir=rec.spool_dir,
        spool_max_bytes=rec.spool_max_bytes,
        flush_timeout_s=rec.flush_timeout,
        lease_ttl_s=rec.lease_ttl,
    )
    repo = _open_for_recording(conf)
    debug = conf.debug
    fingerprint, gpu_opt_in, no_gpu = rec.fingerprint, rec.gpu_opt_in, not rec.gpu
    opt_in = gpu_opt_in if gpu_opt_in is not None else ("" if fingerprint else "processes")
    interactive = err.is_terminal
    stop = threading.Event()
    with _logging(interactive, debug):
        collectors, no_gpu_reason = _collectors(no_gpu, opt_in)
        collectors += _scrapers(list(scrape), scrape_config, scrape_timeout)
        if no_gpu_reason:
            err.print(f"no GPU collector: {no_gpu_reason}", markup=False, highlight=False)
        try:
            recorder = Recorder(
                repo,
                host_id,
                collectors,
                config,
                on_window=(lambda w: print_json(_window_doc(w))) if as_json else None,
            )
            with _stop_on_signals(stop):
                if interactive:
                    live = Live(
                        get_renderable=lambda: _status_text(recorder.status()),
                        console=err,
                        refresh_per_second=2,
                        transient=True,
                        redirect_stdout=False,
                    )
                    with live:
                        summary = recorder.run(duration=duration, stop_event=stop)
                else:
                    summary = recorder.run(duration=duration, stop_event=stop)
            if summary.pending:  # the store did not take everything: do not wait on it again
                log.warning("catalog not refreshed: %d window(s) still spooled", summary.pending)
            else:
                _refresh_catalog(repo, host_id)
        finally:
            for c in collectors:
                c.close()
            repo.close()
        err.print(_summary_line(summary), markup=False, highlight=False)
    # 2: windows were lost; 1: windows wait in the spool for the next run; 0: all stored
    return 2 if summary.lost else 1 if summary.pending else 0
