"""Fleet commands: hosts, query, plot, export-parquet (parse, call snapcloud.query, render)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from snapcloud.cli._app import (
    DebugOpt,
    EndpointOpt,
    JsonOpt,
    StoreOpt,
    app,
    err,
    human_bytes,
    open_repo,
    out,
    print_json,
)
from snapcloud.errors import ValidationError
from snapcloud.query import (
    DEFAULT_WORKERS,
    FORMATS,
    LabelMatcher,
    Selector,
    export_parquet,
    format_result,
    list_hosts,
    plot_series,
    read_series,
    run_query,
    series_from_result,
    time_range,
)
from snapcloud.timeparse import format_ns, seconds_ns

HostsOpt = Annotated[
    list[str] | None, typer.Option("--host", help="Host id or glob (repeatable: any matches).")
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where", help="LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or LABEL!~REGEX (repeatable)."
    ),
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Relative range ending now: 30m, 2h, 7d.")
]
StartOpt = Annotated[
    str | None, typer.Option("--start", help="ISO-8601 with Z/offset or epoch ns (inclusive).")
]
EndOpt = Annotated[str | None, typer.Option("--end", help="Exclusive end, like --start.")]
MetricOpt = Annotated[
    list[str], typer.Option("--metric", help="Metric name or glob, e.g. 'gpu.*.power_mw'.")
]
FingerprintOpt = Annotated[
    str | None, typer.Option("--fingerprint", help="Workload fingerprint (name or glob).")
]
StepOpt = Annotated[
    float | None, typer.Option("--step", help="Aggregate per time bucket of SECONDS.", min=0.001)
]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Parallel reads.", min=1, max=256)]


def _selector(
    hosts: list[str] | None,
    where: list[str] | None,
    since: str | None,
    start: str | None,
    end: str | None,
    metrics: list[str] | None,
    fingerprint: str | None,
) -> Selector:
    start_ns, end_ns = time_range(since=since, start=start, end=end)
    return Selector(
        hosts=tuple(hosts or ()),
        where=tuple(LabelMatcher.parse(w) for w in where or ()),
        start_ns=start_ns,
        end_ns=end_ns,
        metrics=tuple(metrics) if metrics else ("*",),
        fingerprint=fingerprint,
    )


def _step_ns(step: float | None) -> int | None:
    return None if step is None else seconds_ns(step, field="--step")


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if column == "time" and isinstance(value, int):
        return format_ns(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)


@app.command()
def hosts(
    host: HostsOpt = None,
    where: WhereOpt = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Rebuild each host's catalog entry from its index.")
    ] = False,
    store: StoreOpt = None,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List the fleet from the catalog: labels, time bounds, snapshots, stored bytes."""
    selector = _selector(host, where, None, None, None, None, None)
    listing = list_hosts(open_repo(store, endpoint_url, debug), selector, refresh=refresh)
    if as_json:
        print_json(
            {
                "hosts": [e.model_dump(mode="json") for e in listing.entries],
                "uncataloged": listing.uncataloged,
                "refreshed": listing.refreshed,
            }
        )
        return
    table = Table("host", "labels", "first", "last", "snapshots", "stored", "metrics")
    table.columns[0].no_wrap = True
    for e in listing.entries:
        table.add_row(
            e.host,
            ", ".join(f"{k}={v}" for k, v in e.all_labels().items()),
            format_ns(e.first_ns) if e.first_ns is not None else "-",
            format_ns(e.last_ns) if e.last_ns is not None else "-",
            str(e.snapshots),
            human_bytes(e.stored_bytes),
            str(len(e.metrics)),
        )
    for h in listing.uncataloged:
        table.add_row(h, "(no catalog entry: snapcloud hosts --refresh)", "-", "-", "-", "-", "-")
    out.print(table)


@app.command()
def query(
    metric: MetricOpt,
    host: HostsOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fingerprint: FingerprintOpt = None,
    agg: Annotated[
        list[str] | None,
        typer.Option("--agg", help="mean|min|max|sum|count|last|p50|p90|p95|p99|rate|increase."),
    ] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", help="host, gpu, fingerprint or a label name (repeatable)."),
    ] = None,
    step: StepOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or parquet.")] = "table",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    workers: WorkersOpt = DEFAULT_WORKERS,
    store: StoreOpt = None,
    endpoint_url: EndpointOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Aggregate selected metrics over time across the fleet, grouped as asked."""
    if fmt not in FORMATS:
        raise ValidationError(
            f"--format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format"
        )
    if fmt == "table" and output is not None:
        fmt = output.suffix.lstrip(".").lower()
        if fmt not in FORMATS[1:]:
            raise ValidationError(
                f"-o {output}: give --format json, csv or parquet (or a file ending so)",
                field="format",
            )
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise ValidationError("--format parquet is binary: give -o FILE", field="output")
    selector = _selector(host, where, since, start, end, metric, fingerprint)
    result = run_query(
        open_repo(store, endpoint_url, debug),
        selector,
        aggs=tuple(agg or ("mean",)),
        group_by=tuple(group_by or ()),
        step_ns=_step_ns(step),
        workers=workers,
    )
    if fmt != "table":
        _write(format_result(result, fmt), output)
        return
    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*(_cell(v, c) for v, c in zip(row, result.columns, strict=True)))
    out.print(table)
    err.print(result.stats.summary(), markup=False)


@app.command()
def plot(
    metric: MetricOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")],
    host: HostsOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fingerprint: FingerprintOpt = None,
    step: StepOpt = None,
    agg: Annotated[
        str, typer.Option("--agg", help="Aggregation per --step bucket (default mean).")
    ] = "mean",
    title: Annotated[str | None, typer.Option("--title", help="Figure title.")] = None,
    workers: WorkersOpt = DEFAULT_WORKERS,
    store: StoreOpt = None,
    endpoint_url: EndpointOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Draw the selected series over time to a PNG: one line per host or GPU."""
    selector = _selector(host, where, since, start, end, metric, fingerprint)
    repo = open_repo(store, endpoint_url, debug)
    if step is None:
        got = read_series(repo, selector, workers=workers)
        series, stats = got.series, got.stats
    else:
        result = run_query(
            repo,
            selector,
            aggs=(agg,),
            group_by=("host", "gpu"),
            step_ns=_step_ns(step),
            workers=workers,
        )
        series, stats = series_from_result(result, agg), result.stats
    plot_series(series, output, title=title or ", ".join(metric), step_ns=_step_ns(step))
    err.print(f"wrote {output}: {len(series)} series; {stats.summary()}", markup=False)


@app.command("export-parquet")
def export_parquet_(
    dest: Annotated[str, typer.Option("--dest", help="Local dir, file:///dir or s3://bucket/p.")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Metric name or glob (default: all).")
    ] = None,
    host: HostsOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fingerprint: FingerprintOpt = None,
    labels: Annotated[
        bool, typer.Option("--labels", help="Add one label_<name> column per host label.")
    ] = False,
    workers: WorkersOpt = DEFAULT_WORKERS,
    store: StoreOpt = None,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write the selected samples as Parquet, Hive-partitioned by host and date."""
    selector = _selector(host, where, since, start, end, metric, fingerprint)
    report = export_parquet(
        open_repo(store, endpoint_url, debug),
        selector,
        dest,
        endpoint_url=endpoint_url,
        labels=labels,
        workers=workers,
    )
    doc = {
        "dest": report.dest,
        "files": report.files,
        "rows": report.rows,
        "bytes_written": report.bytes_written,
        "stats": report.stats.as_dict(),
    }
    if as_json:
        print_json(doc)
        return
    out.print(
        f"wrote {report.rows} rows in {len(report.files)} file(s), "
        f"{human_bytes(report.bytes_written)}, to {report.dest}; {report.stats.summary()}",
        markup=False,
    )
