"""Data commands: import, export, ls, show, stats, verify, demo."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.table import Table

from snapcloud._strict_json import strict_dumps
from snapcloud.cli._app import (
    CONTEXT,
    cli,
    global_options,
    human_bytes,
    open_repo,
    open_with_policy,
    out,
    print_json,
    warn,
)
from snapcloud.cli._progress import progress_bar, wanted
from snapcloud.demo import run_demo
from snapcloud.errors import HostNotFound
from snapcloud.importers import append_windows, import_files
from snapcloud.models import SnapshotQuery, validate_host
from snapcloud.progress import ProgressCallback, ProgressUpdate
from snapcloud.query import TIME_FORMATS, Selector, select_metrics, time_range
from snapcloud.store import HostStream, StreamStats
from snapcloud.timeparse import format_ns, seconds_ns

host_option = click.option("--host", required=True, metavar="HOST", help="Host id of the stream.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _stats_dict(st: StreamStats) -> dict[str, Any]:
    """A host's figures; ``stored_bytes`` is everything it stores (data, index, catalog)."""
    total = st.total_bytes
    return {
        "host": st.host,
        "snapshots": st.snapshots,
        "tiers": st.tiers,
        "keyframes": st.keyframes,
        "deltas": st.deltas,
        "segments": st.segments,
        "samples": st.samples,
        "stored_bytes": total,
        "data_bytes": st.stored_bytes,
        "index_bytes": st.index_bytes,
        "catalog_bytes": st.catalog_bytes,
        "raw_bytes": st.raw_bytes,
        "ratio": round(total / st.raw_bytes, 6) if st.raw_bytes else 0.0,
        "bytes_per_sample": round(total / st.samples, 4) if st.samples else 0.0,
        "first_ns": st.first_ns,
        "last_ns": st.last_ns,
        "fingerprints": st.fingerprints,
    }


def _tiers_text(tiers: dict[str, int]) -> str:
    return ", ".join(f"{tier} {n}" for tier, n in tiers.items()) or "-"


@cli.command("import", context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@host_option
@click.option(
    "--window",
    type=click.FloatRange(min=0.001),
    default=60.0,
    metavar="SECONDS",
    help="Seconds per snapshot.",
)
@click.option("--fingerprint", default="", metavar="NAME", help="Workload fingerprint to record.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="COLUMN",
    help="A key column of a long CSV (repeatable): its value goes into the metric names "
    "(<column>.<value>.<field>).",
)
@json_option
@global_options
def import_(
    files: tuple[Path, ...],
    host: str,
    window: float,
    fingerprint: str,
    keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Import FILES into the stream of HOST, cut into windows: CSV (long timestamp,value,
    wide, nvidia-smi --query-gpu, or long with --key columns), nvidia-smi dmon/pmon -o DT
    text, or timestamped dcgmi dmon text."""
    validate_host(host, "--host")
    window_ns = seconds_ns(window, field="--window")
    snaps = import_files(host, list(files), window_ns=window_ns, fingerprint=fingerprint, keys=keys)
    repo, _ = open_with_policy(create=True)
    stream = repo.stream(host, create=True)
    # Samples the stream already holds (an import that was interrupted, run twice, or of
    # a file that grew) are not stored again: a rerun stores exactly what is missing.
    with progress_bar("import", enabled=wanted(as_json)) as progress:
        done = append_windows(stream, snaps, progress=progress)
    repo.refresh_catalog(host)
    stored = sum(e.stored_bytes for e in done.appended)
    samples = sum(e.samples for e in done.appended)
    seqs = [e.seq for e in done.appended]
    result = {
        "host": host,
        "files": [str(f) for f in files],
        "snapshots": len(done.appended),
        "already_stored": len(done.already_stored),
        "samples_already_stored": done.samples_already_stored,
        "first_seq": seqs[0] if seqs else None,
        "samples": samples,
        "stored_bytes": stored,
        "bytes_per_sample": round(stored / samples, 4) if samples else 0.0,
    }
    if as_json:
        print_json(result)
    else:
        span = f" (seq {seqs[0]}..{seqs[-1]})" if seqs else ""
        skipped = (
            f"; {done.samples_already_stored} sample(s) already stored"
            if done.samples_already_stored
            else ""
        )
        out.print(
            f"imported {samples} samples from {len(files)} file(s) into {host}: "
            f"{len(seqs)} snapshots{span}, {human_bytes(stored)} stored, "
            f"{result['bytes_per_sample']} B/sample{skipped}"
        )


@cli.command(context_settings=CONTEXT)
@host_option
@click.option(
    "--metric",
    multiple=True,
    metavar="NAME_OR_GLOB",
    help="Metric name or glob, as in query (repeatable; default: all).",
)
@click.option("--start", metavar="TIME", help="ISO-8601 with Z/offset or epoch ns.")
@click.option("--end", metavar="TIME", help="Exclusive end, like --start.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", help="Output format."
)
@click.option(
    "--time-format",
    type=click.Choice(TIME_FORMATS),
    default="ns",
    help="CSV times as epoch nanoseconds (column timestamp_ns) or ISO-8601 (timestamp).",
)
@global_options
def export(
    host: str,
    metric: tuple[str, ...],
    start: str | None,
    end: str | None,
    fmt: str,
    time_format: str,
) -> None:
    """Write the samples of HOST to stdout: csv host,metric,timestamp_ns,value or jsonl."""
    start_ns, end_ns = time_range(start=start, end=end)
    query = SnapshotQuery(start_ns=start_ns, end_ns=end_ns)
    stream = open_repo().stream(host)
    names: list[str] | None = None
    if metric:
        selector = Selector(metrics=metric, start_ns=start_ns, end_ns=end_ns)
        names, warnings = select_metrics(stream, selector)
        warn(warnings)
        query = query.model_copy(update={"metrics": tuple(names)})
    writer = csv.writer(sys.stdout, lineterminator="\n")
    iso = time_format == "iso"
    if fmt == "csv":
        writer.writerow(["host", "metric", "timestamp" if iso else "timestamp_ns", "value"])
    if names == []:  # nothing selected: a header alone, and the warnings above
        return
    with progress_bar("export", enabled=wanted()) as progress:
        _write_export(stream, query, host, fmt, iso, writer, progress)


def _write_export(
    stream: HostStream,
    query: SnapshotQuery,
    host: str,
    fmt: str,
    iso: bool,
    writer: Any,
    progress: ProgressCallback | None,
) -> None:
    sizes = {e.seq: e.stored_bytes for _, e in stream.serving(query)} if progress else {}
    done = moved = 0
    for snap in stream.query(query):
        if progress is not None:
            done, moved = done + 1, moved + sizes.get(snap.seq, 0)
            progress(ProgressUpdate("snapshots", done, len(sizes), moved, host))
        for m in snap.metrics:
            if not len(m):
                continue
            values = [repr(v) for v in m.values.tolist()]
            if fmt == "csv":
                times = m.timestamps.tolist()
                writer.writerows(
                    zip(
                        [host] * len(m),
                        [m.name] * len(m),
                        [format_ns(t) for t in times] if iso else times,
                        values,
                        strict=True,
                    )
                )
            else:
                sys.stdout.write(
                    strict_dumps(
                        {
                            "host": host,
                            "seq": snap.seq,
                            "metric": m.name,
                            "kind": m.kind,
                            "unit": m.unit,
                            "timestamps_ns": m.timestamps.tolist(),
                            "values": values,
                        }
                    )
                    + "\n"
                )


@cli.command("ls", context_settings=CONTEXT)
@click.option("--host", metavar="HOST", help="List this host's snapshots.")
@json_option
@global_options
def ls(host: str | None, as_json: bool) -> None:
    """List hosts, or the snapshots of one host."""
    repo = open_repo()
    if host is None:
        rows = [_stats_dict(repo.stream(h).stats()) for h in repo.hosts()]
        if as_json:
            print_json(rows)
            return
        table = Table("host", "snapshots", "by tier", "first", "last", "stored", "B/sample")
        for r in rows:
            table.add_row(
                r["host"],
                str(r["snapshots"]),
                _tiers_text(r["tiers"]),
                format_ns(r["first_ns"]) if r["first_ns"] is not None else "-",
                format_ns(r["last_ns"]) if r["last_ns"] is not None else "-",
                human_bytes(r["stored_bytes"]),
                f"{r['bytes_per_sample']:.3f}",
            )
        out.print(table)
        return
    entries = [e.model_dump() for e in repo.stream(host).entries()]
    if as_json:
        print_json(entries)
        return
    table = Table("seq", "kind", "base", "window start", "fingerprint", "samples", "stored")
    for e in entries:
        tier = str(e["key"]).split("/", 1)[0]
        table.add_row(
            str(e["seq"]),
            tier if tier != "raw" else "keyframe" if e["kind"] == "k" else "delta",
            str(e["base"]),
            format_ns(e["window_start"]),
            e["fingerprint"],
            str(e["samples"]),
            human_bytes(e["stored_bytes"]),
        )
    out.print(table)


def _summary(values: np.ndarray) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"min": None, "max": None, "mean": None}
    return {"min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean())}


@cli.command(context_settings=CONTEXT)
@host_option
@click.argument("seq", type=click.IntRange(min=0))
@json_option
@global_options
def show(host: str, seq: int, as_json: bool) -> None:
    """Show snapshot SEQ of HOST: its facts and a summary per metric."""
    stream = open_repo().stream(host)
    entry = stream.entry(seq)
    snap = stream.get(seq)
    metrics = [
        {
            "name": m.name,
            "kind": m.kind,
            "unit": m.unit,
            "samples": len(m),
            "first_ns": int(m.timestamps[0]) if len(m) else None,
            "last_ns": int(m.timestamps[-1]) if len(m) else None,
            **_summary(m.values),
        }
        for m in snap.metrics
    ]
    doc = {
        "host": snap.host,
        "seq": snap.seq,
        "kind": "keyframe" if entry.kind == "k" else "delta",
        "base": entry.base,
        "key": entry.key,
        "window_start_ns": snap.window_start,
        "window_end_ns": snap.window_end,
        "fingerprint": snap.fingerprint,
        "labels": snap.labels,
        "metadata": snap.metadata,
        "checksum": f"{snap.checksum:08x}",
        "stored_bytes": entry.stored_bytes,
        "raw_bytes": entry.raw_bytes,
        "metrics": metrics,
    }
    if as_json:
        print_json(doc)
        return
    out.print(
        f"[bold]{snap.host}[/] seq {snap.seq} ({doc['kind']} of {entry.base}) "
        f"{format_ns(snap.window_start)} .. {format_ns(snap.window_end)}  "
        f"fingerprint={snap.fingerprint!r}  {human_bytes(entry.stored_bytes)} stored, "
        f"{human_bytes(entry.raw_bytes)} raw, crc32c {doc['checksum']}"
    )
    if snap.labels:
        out.print("labels: " + ", ".join(f"{k}={v}" for k, v in snap.labels.items()), markup=False)
    table = Table("metric", "kind", "unit", "n", "min", "mean", "max")
    for m in metrics:
        table.add_row(
            str(m["name"]),
            str(m["kind"]),
            str(m["unit"]),
            str(m["samples"]),
            *(f"{m[k]:.6g}" if m[k] is not None else "-" for k in ("min", "mean", "max")),
        )
    out.print(table)


@cli.command(context_settings=CONTEXT)
@click.option("--host", metavar="HOST", help="Only this host.")
@json_option
@global_options
def stats(host: str | None, as_json: bool) -> None:
    """Stored bytes, raw bytes (16 B/sample), samples, objects and requests, per host."""
    repo = open_repo()
    hosts = [host] if host else repo.hosts()
    rows = [_stats_dict(repo.stream(h).stats()) for h in hosts]
    keys = ("snapshots", "keyframes", "deltas", "samples", "stored_bytes", "data_bytes")
    total = {k: sum(r[k] for r in rows) for k in (*keys, "index_bytes", "catalog_bytes")}
    total["raw_bytes"] = sum(r["raw_bytes"] for r in rows)
    total["tiers"] = {}
    for r in rows:
        for tier, n in r["tiers"].items():
            total["tiers"][tier] = total["tiers"].get(tier, 0) + n
    total["objects"] = total["snapshots"] + sum(r["segments"] for r in rows)
    doc = {"store": repo.description, "hosts": rows, "total": total, "requests": repo.requests()}
    if as_json:
        print_json(doc)
        return
    table = Table(
        "host", "snapshots", "by tier", "keyframes", "samples", "data", "index", "stored",
        "raw", "ratio", "B/sample",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            r["host"],
            str(r["snapshots"]),
            _tiers_text(r["tiers"]),
            str(r["keyframes"]),
            str(r["samples"]),
            human_bytes(r["data_bytes"]),
            human_bytes(r["index_bytes"] + r["catalog_bytes"]),
            human_bytes(r["stored_bytes"]),
            human_bytes(r["raw_bytes"]),
            f"{r['ratio']:.4f}",
            f"{r['bytes_per_sample']:.3f}",
        )
    out.print(table)
    ratio = total["stored_bytes"] / total["raw_bytes"] if total["raw_bytes"] else 0.0
    out.print(
        f"{len(rows)} host(s), {total['snapshots']} snapshots ({_tiers_text(total['tiers'])}), "
        f"{total['objects']} objects, {human_bytes(total['stored_bytes'])} stored (index and "
        f"catalog {human_bytes(total['index_bytes'] + total['catalog_bytes'])}) of "
        f"{human_bytes(total['raw_bytes'])} raw ({ratio:.4f}); requests: "
        + ", ".join(f"{k}={v}" for k, v in sorted(repo.requests().items()) if v)
    )


@cli.command(context_settings=CONTEXT)
@click.option("--host", metavar="HOST", help="Only this host.")
@click.option(
    "--repair/--no-repair", default=False, help="Rebuild index segments from the objects."
)
@json_option
@global_options
def verify(host: str | None, repair: bool, as_json: bool) -> int:
    """Check every object's checksums against the index; exit 1 when problems are found."""
    repo = open_repo()
    with progress_bar("verify", enabled=wanted(as_json)) as progress:
        reports = repo.verify(host, repair=repair, progress=progress)
    if host is not None and all(r.objects == 0 and r.entries == 0 for r in reports):
        raise HostNotFound(f"no host {host!r} in {repo.description}", host=host)
    doc = [
        {
            "host": r.host,
            "ok": r.ok,
            "objects": r.objects,
            "entries": r.entries,
            "bytes_read": r.bytes_read,
            "orphans": r.orphans,
            "problems": [{"key": p.key, "what": p.what, "kind": p.kind} for p in r.problems],
            "repaired_segments": r.repaired_segments,
        }
        for r in reports
    ]
    if as_json:
        print_json(doc)
    else:
        for r in reports:
            state = "ok" if r.ok else f"{len(r.problems)} problem(s)"
            out.print(
                f"{r.host}: {state}; {r.objects} objects, {r.entries} index entries, "
                f"{len(r.orphans)} orphan(s)"
                + (f", {r.repaired_segments} segment(s) rewritten" if repair else ""),
                markup=False,
            )
            for p in r.problems:
                out.print(f"  {p.key}: {p.what}", markup=False)
    return 0 if all(r.ok for r in reports) else 1


@cli.command(context_settings=CONTEXT)
@click.option(
    "--hosts", type=click.IntRange(1, 1000), default=4, metavar="N", help="Synthetic hosts."
)
@click.option(
    "--windows",
    type=click.IntRange(min=1),
    default=30,
    metavar="N",
    help="One-minute windows per host.",
)
@json_option
@global_options
def demo(hosts: int, windows: int, as_json: bool) -> int:
    """Store a small synthetic GPU fleet, read it back, print stats and a query."""
    repo, _ = open_with_policy(create=True)
    result = run_demo(repo, hosts=hosts, windows=windows)
    doc = {
        "store": repo.description,
        "hosts": [_stats_dict(s) for s in result.stats],
        "gpu_power_last_10min_w": {
            h: {"mean": m, "max": x} for h, (m, x) in result.power_by_host.items()
        },
        "requests": result.requests,
        "bit_exact": result.bit_exact,
    }
    if as_json:
        print_json(doc)
        return 0 if result.bit_exact else 1
    out.print(f"store: {repo.description}", markup=False)
    table = Table("host", "snapshots", "samples", "stored", "raw", "B/sample")
    for s in result.stats:
        table.add_row(
            s.host,
            str(s.snapshots),
            str(s.samples),
            human_bytes(s.stored_bytes),
            human_bytes(s.raw_bytes),
            f"{s.bytes_per_sample:.3f}",
        )
    out.print(table)
    q = Table("host", "mean GPU power (W)", "max GPU power (W)", title="last 10 minutes, 8 GPUs")
    for h, (mean, peak) in result.power_by_host.items():
        q.add_row(h, f"{mean:.1f}", f"{peak:.1f}")
    out.print(q)
    out.print(
        "read back bit-exact: "
        + ("yes" if result.bit_exact else "NO")
        + "; requests: "
        + ", ".join(f"{k}={v}" for k, v in sorted(result.requests.items()) if v)
    )
    return 0 if result.bit_exact else 1
