"""The Click group, the options every command shares, and the error boundary.

Commands parse, call the library, and render; nothing here is needed by a
library user. Bad input of any kind (a usage error Click finds, or a library
error) becomes one line on stderr and exit status 2 (``--debug`` shows the
library's traceback instead).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from snapcloud import __version__
from snapcloud._strict_json import strict_dumps
from snapcloud.backends import secret_redacting_filter
from snapcloud.errors import SnapcloudError
from snapcloud.models import SnapshotConfig
from snapcloud.retention import StoredPolicy, read_policy
from snapcloud.settings import ResolvedSettings, Settings, load_settings
from snapcloud.store import Repository

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Globals:
    """The options every command takes, before or after its name (the later one wins)."""

    store: str | None = None
    endpoint_url: str | None = None
    debug: bool = False
    config: Path | None = None
    resolved: ResolvedSettings | None = None

    @property
    def debugging(self) -> bool:
        """Whether ``--debug`` (or its setting) is on, as far as it is known yet."""
        if self.resolved is not None:
            return self.resolved.settings.debug
        return self.debug or os.environ.get("SNAPCLOUD_DEBUG", "") not in ("", "0", "false")


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a global option given on the command line (before or after the command)."""
    if value is not None and value is not False and param.name is not None:
        setattr(ctx.ensure_object(Globals), param.name, value)


def global_options(f: F) -> F:
    """Add ``--store``, ``--endpoint-url``, ``--debug`` and ``--config`` to a command or group."""
    options = [
        click.option(
            "--store",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="file:///path, s3://bucket/prefix or memory://name "
            "(default: the embedded store; env SNAPCLOUD_STORE).",
        ),
        click.option(
            "--endpoint-url",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="S3 endpoint for MinIO, Ceph, R2 or a moto server (env SNAPCLOUD_ENDPOINT_URL).",
        ),
        click.option(
            "--debug",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_remember,
            help="Show tracebacks and debug logs (env SNAPCLOUD_DEBUG=1).",
        ),
        click.option(
            "--config",
            metavar="FILE",
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            callback=_remember,
            help="TOML settings file (env SNAPCLOUD_CONFIG; default: "
            "~/.config/snapcloud/config.toml).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def globals_() -> Globals:
    """The global options of the command being run."""
    return click.get_current_context().ensure_object(Globals)


@click.group(
    name="snapcloud",
    context_settings=CONTEXT,
    invoke_without_command=True,
)
@global_options
@click.version_option(
    __version__, "--version", prog_name="snapcloud", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Fleet-wide CPU/GPU profiling on object storage."""
    if ctx.invoked_subcommand is None:
        # A bare ``snapcloud`` is a usage error like any group without its command:
        # the command list on stderr, exit status 2.
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)


def subgroup(parent: click.Group, name: str, help_: str) -> click.Group:
    """A command group under ``parent`` that, called alone, is a one-line usage error."""

    @parent.group(name, help=help_, invoke_without_command=True, context_settings=CONTEXT)
    @global_options
    @click.pass_context
    def group(ctx: click.Context) -> None:
        if ctx.invoked_subcommand is None:
            commands = ", ".join(sorted(group.commands))
            raise click.UsageError(f"missing command (one of: {commands})", ctx)

    return group


def settings(**command_flags: Any) -> Settings:
    """This run's settings: the flags given (the command's and the global ones) over the
    environment, the config file and the defaults (``snapcloud.settings``).

    ``command_flags`` are nested as in the file (``record={"interval": ...}``); ``None``
    means not given.
    """
    return resolve_settings(**command_flags).settings


def resolve_settings(**command_flags: Any) -> ResolvedSettings:
    """``settings`` with the config file read and where each value came from."""
    opts = globals_()
    flags = {
        "store": opts.store,
        "endpoint_url": opts.endpoint_url,
        "debug": opts.debug or None,
        **command_flags,
    }
    opts.resolved = load_settings(flags, config=opts.config)
    return opts.resolved


def open_repo(
    config: Settings | None = None, *, debug_logs: bool = True, create: bool = False
) -> Repository:
    """Open the store the settings name (``--store``, ``SNAPCLOUD_STORE``, the config file,
    else the embedded store).

    With ``--debug`` (and ``debug_logs``), every log record goes to stderr, secrets masked.
    Only commands that write new data pass ``create``: the others never make a store
    (a mistyped path is an error) and write nothing at open (a read-only mount works).
    """
    config = config or settings()
    if debug_logs and config.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        for handler in logging.getLogger().handlers:  # every record, from any logger
            if secret_redacting_filter() not in handler.filters:
                handler.addFilter(secret_redacting_filter())
    return Repository.open(
        config.store, endpoint_url=config.endpoint_url, config=SnapshotConfig(), create=create
    )


def open_with_policy(
    config: Settings | None = None, *, debug_logs: bool = True, create: bool = False
) -> tuple[Repository, StoredPolicy]:
    """``open_repo`` for writers and compactors: the store's policy read, and its keyframe
    interval and tier ages put in the repository's config (``snapcloud policy``)."""
    repo = open_repo(config, debug_logs=debug_logs, create=create)
    stored = read_policy(repo.objects)
    if stored.stored:
        repo.config = stored.policy.snapshot_config(repo.config)
    return repo, stored


def print_json(data: Any) -> None:
    """One strict JSON document on stdout (non-finite numbers as "NaN", "+Inf", "-Inf")."""
    sys.stdout.write(strict_dumps(data) + "\n")


def warn(warnings: Sequence[str]) -> None:
    """Each warning as one line on stderr (``--json`` output carries them too)."""
    for w in warnings:
        err.print(f"snapcloud: warning: {w}", markup=False)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _usage_line(exc: click.ClickException) -> str:
    """A Click error as one line: what is wrong, naming the option, and where help is."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f"; see '{ctx.command_path} --help'"
    return f"snapcloud: error: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv``; return the exit status (0 ok, 1 problems found, 2 bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    opts = Globals()
    try:
        result = cli.main(args=args, prog_name="snapcloud", standalone_mode=False, obj=opts)
    except SnapcloudError as exc:
        if opts.debugging or "--debug" in args:
            raise
        err.print(f"snapcloud: error: {exc}", markup=False)
        return 2
    except click.ClickException as exc:
        err.print(_usage_line(exc), markup=False)
        return 2
    except click.exceptions.Abort:
        err.print("snapcloud: aborted", markup=False)
        return 130
    except (BrokenPipeError, KeyboardInterrupt):
        return 130
    except OSError as exc:
        if opts.debugging or "--debug" in args:
            raise
        err.print(f"snapcloud: error: {exc.strerror or exc}: {exc.filename or ''}", markup=False)
        return 2
    return int(result) if isinstance(result, int) else 0


def entrypoint() -> None:
    """The ``snapcloud`` console script."""
    sys.exit(main())
