"""Retention commands: ``compact`` and ``lifecycle show|apply``."""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError as PydanticError
from rich.table import Table

from snapcloud.backends import LifecycleStore, has_lifecycle
from snapcloud.cli._app import (
    CONTEXT,
    cli,
    global_options,
    human_bytes,
    open_with_policy,
    out,
    print_json,
    settings,
    subgroup,
)
from snapcloud.cli._progress import progress_bar, wanted
from snapcloud.errors import ConfigError, HostNotFound
from snapcloud.retention import (
    CompactionReport,
    Compactor,
    RetentionPolicy,
    StorePolicy,
    apply_lifecycle,
    get_lifecycle,
    lifecycle_rules,
)
from snapcloud.settings import CompactSettings
from snapcloud.timeparse import format_ns, parse_instant

lifecycle = subgroup(
    cli, "lifecycle", "The retention policy as an S3 bucket lifecycle configuration (a safety net)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def policy_options(f: Any) -> Any:
    """The lifecycle options; each overrides the store's policy (``snapcloud policy``)."""
    f = click.option(
        "--archive-transition-days",
        type=click.IntRange(min=0),
        metavar="DAYS",
        help="Age at which to move them (default: the store's policy).",
    )(f)
    f = click.option(
        "--archive-storage-class",
        metavar="CLASS",
        help="Move archive objects to this class (default: the store's policy).",
    )(f)
    return click.option(
        "--grace-days",
        type=click.IntRange(min=0),
        metavar="DAYS",
        help="Days past the compactor's schedule (default: the store's policy, 7).",
    )(f)


def _render(report: CompactionReport) -> None:
    verb = "would" if report.dry_run else "did"
    table = Table(
        "tier",
        "write objs",
        "write bytes",
        "mark objs",
        "mark bytes",
        "delete objs",
        "delete bytes",
    )
    for tier, t in report.totals().items():
        table.add_row(
            tier,
            str(t.written_objects),
            human_bytes(t.written_bytes),
            str(t.marked_objects),
            human_bytes(t.marked_bytes),
            str(t.deleted_objects),
            human_bytes(t.deleted_bytes),
        )
    title = "plan" if report.dry_run else "compaction"
    out.print(f"{title} as of {format_ns(report.now_ns)}", markup=False)
    out.print(table)
    for h in report.hosts:
        out.print(
            f"{h.host}: {verb} compress {len(h.compressed)} group(s), archive "
            f"{len(h.archived)} batch(es), expire {len(h.expired)}, write {h.marks_written} "
            f"mark(s), delete {h.marks_deleted} mark(s), mark {h.orphans_marked} orphan(s)",
            markup=False,
        )
        for p in h.problems:
            out.print(f"  problem: {p}", markup=False)
    requests = ", ".join(f"{k}={v}" for k, v in sorted(report.requests.items()) if v)
    out.print(f"requests: {requests or 'none'}; {report.seconds:.2f} s", markup=False)


@cli.command(context_settings=CONTEXT)
@click.option("--host", multiple=True, metavar="HOST", help="Only these hosts (repeatable).")
@click.option("--now", metavar="TIME", help="Act as of this time (ISO-8601 or epoch ns).")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    show_default=str(CompactSettings.model_fields["lease_ttl"].default),
    help="Seconds the compactor lease lasts.",
)
@json_option
@global_options
def compact(
    host: tuple[str, ...], now: str | None, dry_run: bool, lease_ttl: float | None, as_json: bool
) -> int:
    """Move data through the retention tiers: raw -> compressed -> archive -> deleted."""
    conf = settings(compact={"lease_ttl": lease_ttl})
    repo, stored = open_with_policy(conf)
    now_ns = parse_instant(now, field="--now") if now is not None else None
    policy = stored.policy.retention if stored.stored else None  # else from repo.config
    compactor = Compactor(repo.objects, repo.config, policy, lease_ttl_s=conf.compact.lease_ttl)
    unknown = sorted(set(host) - set(compactor.hosts()))
    if unknown:
        names = ", ".join(repr(h) for h in unknown)
        raise HostNotFound(f"no host {names} in {repo.description}", host=unknown[0])
    with progress_bar("compact", enabled=wanted(as_json)) as progress:
        report = compactor.run(now_ns, list(host) or None, dry_run=dry_run, progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        _render(report)
    return 1 if report.problems else 0


def _policy(
    base: RetentionPolicy, grace: int | None, storage_class: str | None, days: int | None
) -> RetentionPolicy:
    """``base`` with the lifecycle options given on the command line."""
    given = {
        "lifecycle_grace_days": grace,
        "archive_storage_class": storage_class,
        "archive_transition_days": days,
    }
    try:
        return RetentionPolicy(
            **{**base.model_dump(), **{k: v for k, v in given.items() if v is not None}}
        )
    except PydanticError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(msg, field="lifecycle") from None


def _store_policy() -> tuple[RetentionPolicy, LifecycleStore | None]:
    """The named store's retention policy and, if it keeps lifecycle rules (S3), the store
    (no store named: the defaults)."""
    conf = settings()
    if not conf.store:
        return StorePolicy().retention, None
    repo, stored = open_with_policy(conf)
    objects = repo.objects
    return stored.policy.retention, objects if has_lifecycle(objects) else None


def _print_rules(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(doc)
        return
    table = Table("id", "prefix", "action")
    for r in doc["Rules"]:
        if "Expiration" in r:
            action = f"expire after {r['Expiration']['Days']} d"
            for t in r.get("Transitions", []):
                action += f"; to {t['StorageClass']} after {t['Days']} d"
        elif "AbortIncompleteMultipartUpload" in r:
            days = r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            action = f"abort incomplete multipart uploads after {days} d"
        else:
            action = "other"
        table.add_row(str(r.get("ID")), str(r.get("Filter", {}).get("Prefix", "")), action)
    out.print(table)


@lifecycle.command("show", context_settings=CONTEXT)
@click.option("--prefix", metavar="PREFIX", help="Key prefix (default: the store's).")
@click.option("--current", is_flag=True, help="Show the bucket's rules instead.")
@policy_options
@json_option
@global_options
def lifecycle_show(
    prefix: str | None,
    current: bool,
    grace_days: int | None,
    archive_storage_class: str | None,
    archive_transition_days: int | None,
    as_json: bool,
) -> None:
    """Print the lifecycle rules the store's retention policy gives (or, --current, the
    bucket's)."""
    base, bucket = _store_policy()
    policy = _policy(base, grace_days, archive_storage_class, archive_transition_days)
    if current:
        if bucket is None:
            raise ConfigError("--current needs an s3:// store", field="store")
        _print_rules(get_lifecycle(bucket), as_json)
        return
    if prefix is None:
        prefix = bucket.lifecycle_prefix if bucket is not None else ""
    _print_rules(lifecycle_rules(policy, prefix), as_json)


@lifecycle.command("apply", context_settings=CONTEXT)
@policy_options
@json_option
@global_options
def lifecycle_apply(
    grace_days: int | None,
    archive_storage_class: str | None,
    archive_transition_days: int | None,
    as_json: bool,
) -> None:
    """Put the store's policy's rules on its bucket (other rules are kept)."""
    base, bucket = _store_policy()
    policy = _policy(base, grace_days, archive_storage_class, archive_transition_days)
    if bucket is None:
        raise ConfigError("lifecycle apply needs an s3:// store", field="store")
    _print_rules(apply_lifecycle(bucket, policy), as_json)
