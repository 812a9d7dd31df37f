"""Fleet commands: hosts, query, plot, export-parquet (parse, call snapcloud.query, render)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from snapcloud.cli._app import (
    CONTEXT,
    cli,
    err,
    global_options,
    human_bytes,
    open_repo,
    out,
    print_json,
    settings,
    warn,
)
from snapcloud.cli._progress import progress_bar, wanted
from snapcloud.errors import ValidationError
from snapcloud.query import (
    AGGREGATIONS,
    DEFAULT_WORKERS,
    EXPORT_MODES,
    FORMATS,
    TIME_FORMATS,
    LabelMatcher,
    Selector,
    check_aggregations,
    export_parquet,
    format_result,
    list_hosts,
    plot_series,
    read_series,
    run_query,
    series_from_result,
    time_range,
    unmatched_metrics,
)
from snapcloud.timeparse import format_ns, seconds_ns

hosts_option = click.option(
    "--host", multiple=True, metavar="GLOB", help="Host id or glob (repeatable: any matches)."
)
where_option = click.option(
    "--where",
    multiple=True,
    metavar="MATCHER",
    help="LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or LABEL!~REGEX (repeatable).",
)
since_option = click.option(
    "--since", metavar="DURATION", help="Relative range ending now: 30m, 2h, 7d."
)
start_option = click.option(
    "--start", metavar="TIME", help="ISO-8601 with Z/offset or epoch ns (inclusive)."
)
end_option = click.option("--end", metavar="TIME", help="Exclusive end, like --start.")
metric_option = click.option(
    "--metric",
    multiple=True,
    required=True,
    metavar="NAME_OR_GLOB",
    help="Metric name or glob, e.g. 'gpu.*.power_avg_mw'.",
)
fingerprint_option = click.option(
    "--fingerprint", metavar="GLOB", help="Workload fingerprint (name or glob)."
)
step_option = click.option(
    "--step",
    type=click.FloatRange(min=0.001),
    metavar="SECONDS",
    help="Aggregate per time bucket of SECONDS.",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 256),
    metavar="N",
    show_default=str(DEFAULT_WORKERS),
    help="Parallel reads (1-256).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _selector(
    hosts: Sequence[str],
    where: Sequence[str],
    since: str | None,
    start: str | None,
    end: str | None,
    metrics: Sequence[str],
    fingerprint: str | None,
) -> Selector:
    start_ns, end_ns = time_range(since=since, start=start, end=end)
    return Selector(
        hosts=tuple(hosts),
        where=tuple(LabelMatcher.parse(w) for w in where),
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


@cli.command(context_settings=CONTEXT)
@hosts_option
@where_option
@click.option("--refresh", is_flag=True, help="Rebuild each host's catalog entry from its index.")
@json_option
@global_options
def hosts(host: tuple[str, ...], where: tuple[str, ...], refresh: bool, as_json: bool) -> None:
    """List the fleet from the catalog: labels, time bounds, snapshots, stored bytes."""
    selector = _selector(host, where, None, None, None, (), None)
    listing = list_hosts(open_repo(), selector, refresh=refresh)
    warn(listing.warnings)
    if as_json:
        print_json(
            {
                "hosts": [e.model_dump(mode="json") for e in listing.entries],
                "uncataloged": listing.uncataloged,
                "refreshed": listing.refreshed,
                "warnings": listing.warnings,
            }
        )
        return
    table = Table("host", "labels", "first", "last", "snapshots", "stored", "metrics")
    table.columns[0].no_wrap = True
    for e in listing.entries:
        by_tier = ", ".join(f"{t} {s.snapshots}" for t, s in e.tiers.items())
        table.add_row(
            e.host,
            ", ".join(f"{k}={v}" for k, v in e.all_labels().items()),
            format_ns(e.first_ns) if e.first_ns is not None else "-",
            format_ns(e.last_ns) if e.last_ns is not None else "-",
            str(e.snapshots) if len(e.tiers) < 2 else f"{e.snapshots} ({by_tier})",
            human_bytes(e.stored_bytes),
            str(len(e.metrics)),
        )
    for h in listing.uncataloged:
        table.add_row(h, "(no catalog entry: snapcloud hosts --refresh)", "-", "-", "-", "-", "-")
    out.print(table)


@cli.command(context_settings=CONTEXT)
@metric_option
@hosts_option
@where_option
@since_option
@start_option
@end_option
@fingerprint_option
@click.option(
    "--agg",
    multiple=True,
    metavar="AGG",
    help=f"{'|'.join(AGGREGATIONS)} (repeatable; default mean).",
)
@click.option(
    "--group-by",
    multiple=True,
    metavar="KEY",
    help="host, gpu, fingerprint or a label name (repeatable).",
)
@step_option
@click.option(
    "--format",
    "fmt",
    default="table",
    metavar="FORMAT",
    help=f"{', '.join(FORMATS)} (jsonl: one JSON object per row).",
)
@click.option(
    "--time-format",
    type=click.Choice(TIME_FORMATS),
    default="ns",
    help="CSV times as epoch nanoseconds or ISO-8601.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), metavar="FILE", help="Write to FILE."
)
@workers_option
@global_options
def query(
    metric: tuple[str, ...],
    host: tuple[str, ...],
    where: tuple[str, ...],
    since: str | None,
    start: str | None,
    end: str | None,
    fingerprint: str | None,
    agg: tuple[str, ...],
    group_by: tuple[str, ...],
    step: float | None,
    fmt: str,
    time_format: str,
    output: Path | None,
    workers: int | None,
) -> None:
    """Aggregate selected metrics over time across the fleet, grouped as asked."""
    conf = settings(query={"workers": workers})
    if fmt not in FORMATS:
        raise ValidationError(
            f"--format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format"
        )
    if fmt == "table" and output is not None:
        fmt = output.suffix.lstrip(".").lower()
        if fmt not in FORMATS[1:]:
            raise ValidationError(
                f"-o {output}: give --format json, jsonl, csv or parquet (or a file ending so)",
                field="format",
            )
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise ValidationError("--format parquet is binary: give -o FILE", field="output")
    check_aggregations(agg or ("mean",))  # before the store is opened
    selector = _selector(host, where, since, start, end, metric, fingerprint)
    with progress_bar("query", enabled=wanted(fmt == "json")) as progress:
        result = run_query(
            open_repo(conf),
            selector,
            aggs=agg or ("mean",),
            group_by=group_by,
            step_ns=_step_ns(step),
            workers=conf.query.workers,
            progress=progress,
        )
    warn(result.stats.warnings)
    if fmt != "table":
        _write(format_result(result, fmt, time_format=time_format), output)
        return
    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*(_cell(v, c) for v, c in zip(row, result.columns, strict=True)))
    out.print(table)
    err.print(result.stats.summary(), markup=False)


@cli.command(context_settings=CONTEXT)
@metric_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    metavar="FILE",
    help="PNG file to write.",
)
@hosts_option
@where_option
@since_option
@start_option
@end_option
@fingerprint_option
@step_option
@click.option(
    "--agg",
    metavar="AGG",
    default="mean",
    help="Aggregation per --step bucket (as in query).",
)
@click.option("--title", metavar="TITLE", help="Figure title.")
@workers_option
@global_options
def plot(
    metric: tuple[str, ...],
    output: Path,
    host: tuple[str, ...],
    where: tuple[str, ...],
    since: str | None,
    start: str | None,
    end: str | None,
    fingerprint: str | None,
    step: float | None,
    agg: str,
    title: str | None,
    workers: int | None,
) -> None:
    """Draw the selected series over time to a PNG: one line per host or GPU."""
    conf = settings(query={"workers": workers})
    workers = conf.query.workers
    check_aggregations((agg,))  # before the store is opened
    selector = _selector(host, where, since, start, end, metric, fingerprint)
    repo = open_repo(conf)
    with progress_bar("read", enabled=wanted()) as progress:
        if step is None:
            got = read_series(repo, selector, workers=workers, progress=progress)
            series, stats = got.series, got.stats
        else:
            result = run_query(
                repo,
                selector,
                aggs=(agg,),
                group_by=("host", "gpu"),
                step_ns=_step_ns(step),
                workers=workers,
                progress=progress,
            )
            series, stats = series_from_result(result, agg), result.stats
    # With nothing at all to draw plot_series raises, naming what matched nothing.
    unmatched = unmatched_metrics(metric, series) if any(len(s) for s in series) else []
    warn([*stats.warnings, *(f"--metric {m!r} matched no samples" for m in unmatched)])
    title = title or ", ".join(metric)
    plot_series(series, output, title=title, step_ns=_step_ns(step), metrics=metric)
    err.print(f"wrote {output}: {len(series)} series; {stats.summary()}", markup=False)


@cli.command("export-parquet", context_settings=CONTEXT)
@click.option(
    "--dest",
    required=True,
    metavar="DIR_OR_URL",
    help="Local dir, file:///dir or s3://bucket/prefix.",
)
@click.option(
    "--metric", multiple=True, metavar="NAME_OR_GLOB", help="Metric name or glob (default: all)."
)
@hosts_option
@where_option
@since_option
@start_option
@end_option
@fingerprint_option
@click.option("--labels", is_flag=True, help="Add one label_<name> column per host label.")
@click.option(
    "--mode",
    type=click.Choice(EXPORT_MODES),
    default="error",
    show_default=True,
    help="error: refuse a --dest that holds data; overwrite: replace the export there; "
    "append: add beside it.",
)
@workers_option
@json_option
@global_options
def export_parquet_(
    dest: str,
    metric: tuple[str, ...],
    host: tuple[str, ...],
    where: tuple[str, ...],
    since: str | None,
    start: str | None,
    end: str | None,
    fingerprint: str | None,
    labels: bool,
    mode: str,
    workers: int | None,
    as_json: bool,
) -> None:
    """Write the selected samples as Parquet, Hive-partitioned by host and date."""
    conf = settings(query={"workers": workers})
    selector = _selector(host, where, since, start, end, metric, fingerprint)
    with progress_bar("export", enabled=wanted(as_json)) as progress:
        report = export_parquet(
            open_repo(conf),
            selector,
            dest,
            endpoint_url=conf.endpoint_url,
            labels=labels,
            workers=conf.query.workers,
            mode=mode,
            progress=progress,
        )
    warn(report.stats.warnings)
    doc = {
        "dest": report.dest,
        "mode": report.mode,
        "files": report.files,
        "deleted": report.deleted,
        "rows": report.rows,
        "bytes_written": report.bytes_written,
        "stats": report.stats.as_dict(),
        "warnings": report.stats.warnings,
    }
    if as_json:
        print_json(doc)
        return
    out.print(
        f"wrote {report.rows} rows in {len(report.files)} file(s), "
        f"{human_bytes(report.bytes_written)}, to {report.dest}; {report.stats.summary()}",
        markup=False,
    )
