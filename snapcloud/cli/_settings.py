"""Settings commands: ``config show`` (this machine's) and ``policy show|set`` (the store's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from snapcloud.cli._app import (
    CONTEXT,
    cli,
    global_options,
    human_bytes,
    open_with_policy,
    out,
    print_json,
    resolve_settings,
    subgroup,
)
from snapcloud.errors import ValidationError
from snapcloud.retention import POLICY_KEY, StoredPolicy, StorePolicy, update_policy
from snapcloud.timeparse import format_duration, parse_duration

config_group = subgroup(
    cli, "config", "This machine's settings: flags > SNAPCLOUD_* variables > config file."
)


def _flat(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if isinstance(value, dict) and not prefix and key != "labels":
            rows.extend(_flat(value, f"{key}."))
        else:
            rows.append((prefix + key, value))
    return rows


@config_group.command("show", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@global_options
def config_show(as_json: bool) -> None:
    """Print the settings in force, each with where it came from."""
    res = resolve_settings()
    doc = res.settings.model_dump(mode="json")
    rows = [(key, value, res.sources.get(key, "default")) for key, value in _flat(doc)]
    if as_json:
        print_json(
            {
                "config_file": str(res.path) if res.path else None,
                "settings": doc,
                "sources": {key: source for key, _, source in rows},
            }
        )
        return
    out.print(f"config file: {res.path or '(none)'}", markup=False)
    for key, value, source in rows:
        out.print(f"{key} = {value!r}  ({source})", markup=False)


# ---------------------------------------------------------------------------- policy

policy_group = subgroup(
    cli,
    "policy",
    "The store's policy (keyframe interval, retention), shared by every writer and compactor.",
)

_DURATIONS = (
    "raw_max_age_ns",
    "compressed_max_age_ns",
    "archive_max_age_ns",
    "delete_delay_ns",
    "orphan_age_ns",
)


def _to_ns(text: str, zero: bool) -> int:
    text = text.strip()
    if zero and text == "0":
        return 0
    try:
        return parse_duration(text, field="duration")
    except ValidationError:
        what = "a duration like 30m, 36h or 7d" + (" (or 0)" if zero else "")
        raise click.BadParameter(f"{text!r} is not {what}") from None


def duration(*, zero: bool = False) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback turning ``30m``, ``36h``, ``7d`` (or ``0`` where allowed) into ns."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        return None if value is None else _to_ns(value, zero)

    return convert


def durations(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """An option callback for a comma-separated list of durations (``1m,1h``)."""
    return None if value is None else tuple(_to_ns(p, False) for p in value.split(","))


def _policy_doc(repo_description: str, stored: StoredPolicy) -> dict[str, Any]:
    return {
        "store": repo_description,
        "key": POLICY_KEY,
        "stored": stored.stored,
        "policy": stored.policy.model_dump(mode="json"),
    }


def _show_policy(description: str, stored: StoredPolicy, as_json: bool) -> None:
    if as_json:
        print_json(_policy_doc(description, stored))
        return
    where = f"stored at {POLICY_KEY}" if stored.stored else "not stored: the defaults"
    out.print(f"policy of {description} ({where})", markup=False)
    policy = stored.policy
    rows: list[tuple[str, str]] = [("keyframe_interval", str(policy.keyframe_interval))]
    for name, value in policy.retention.model_dump().items():
        if name in _DURATIONS:
            rows.append((name.removesuffix("_ns"), format_duration(value)))
        elif name == "resolutions_ns":
            rows.append(("resolutions", ",".join(format_duration(v) for v in value)))
        elif name == "max_frame_bytes":
            rows.append((name, human_bytes(value)))
        else:
            rows.append((name, "-" if value is None else str(value)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.print(f"  {name:<{width}}  {value}", markup=False)


@policy_group.command("show", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@global_options
def policy_show(as_json: bool) -> None:
    """Print the store's policy (the defaults when none is stored)."""
    repo, stored = open_with_policy()
    _show_policy(repo.description, stored, as_json)


@policy_group.command("set", context_settings=CONTEXT)
@click.option(
    "--keyframe-interval",
    type=click.IntRange(1, 100_000),
    metavar="N",
    help="Snapshots per keyframe group (a new keyframe every N windows).",
)
@click.option(
    "--raw-max-age",
    callback=duration(zero=True),
    metavar="DURATION",
    help="Age at which a group moves to the compressed tier.",
)
@click.option(
    "--compressed-max-age",
    callback=duration(zero=True),
    metavar="DURATION",
    help="Age at which it moves to the (lossy) archive tier.",
)
@click.option(
    "--archive-max-age",
    callback=duration(),
    metavar="DURATION",
    help="Age at which it is deleted.",
)
@click.option(
    "--delete-delay",
    callback=duration(zero=True),
    metavar="DURATION",
    help="Time between marking an object and deleting it.",
)
@click.option(
    "--orphan-age",
    callback=duration(zero=True),
    metavar="DURATION",
    help="Age at which an object no index names is collected.",
)
@click.option(
    "--resolutions",
    callback=durations,
    metavar="LIST",
    help="Archive bucket widths, comma-separated (e.g. 1m,1h).",
)
@click.option(
    "--compressed-level", type=click.IntRange(1, 22), metavar="N", help="zstd level, compressed."
)
@click.option(
    "--archive-level", type=click.IntRange(1, 22), metavar="N", help="zstd level, archive."
)
@click.option(
    "--lifecycle-grace-days",
    type=click.IntRange(0, 3650),
    metavar="DAYS",
    help="Days the S3 lifecycle rules wait past the compactor's schedule.",
)
@click.option(
    "--archive-storage-class",
    metavar="CLASS",
    help="Storage class archive objects move to ('none' to stop moving them).",
)
@click.option(
    "--archive-transition-days",
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Age at which archive objects move to that class.",
)
@click.option("--reset", is_flag=True, help="Start from the defaults, not the stored policy.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@global_options
def policy_set(
    keyframe_interval: int | None,
    raw_max_age: int | None,
    compressed_max_age: int | None,
    archive_max_age: int | None,
    delete_delay: int | None,
    orphan_age: int | None,
    resolutions: tuple[int, ...] | None,
    compressed_level: int | None,
    archive_level: int | None,
    lifecycle_grace_days: int | None,
    archive_storage_class: str | None,
    archive_transition_days: int | None,
    reset: bool,
    as_json: bool,
) -> None:
    """Change the store's policy (validated; written only if nobody changed it meanwhile).

    Every writer (record, import) and compactor reads it when it starts.
    """
    changes: dict[str, Any] = {
        "keyframe_interval": keyframe_interval,
        "raw_max_age_ns": raw_max_age,
        "compressed_max_age_ns": compressed_max_age,
        "archive_max_age_ns": archive_max_age,
        "delete_delay_ns": delete_delay,
        "orphan_age_ns": orphan_age,
        "resolutions_ns": resolutions,
        "compressed_level": compressed_level,
        "archive_level": archive_level,
        "lifecycle_grace_days": lifecycle_grace_days,
        "archive_storage_class": archive_storage_class,
        "archive_transition_days": archive_transition_days,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if changes.get("archive_storage_class", "").lower() == "none":
        changes["archive_storage_class"] = None
        changes.setdefault("archive_transition_days", None)
    if not changes and not reset:
        raise click.UsageError("nothing to set: give at least one option (or --reset)")
    repo, stored = open_with_policy(create=True)  # like import: it sets up a store
    base = StoredPolicy(StorePolicy(), stored.etag) if reset else stored
    _show_policy(repo.description, update_policy(repo.objects, base, changes), as_json)
