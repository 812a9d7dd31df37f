"""The Click group, the options every command shares, and the error boundary.

Commands parse, call the library, and render; nothing here is needed by a
library user. Bad input of any kind (a usage error Click finds, or a library
error) becomes one line on stderr and exit status 2 (``--debug`` shows the
library's traceback instead).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console

from snapcloud import __version__
from snapcloud.backends import secret_redacting_filter
from snapcloud.errors import SnapcloudError
from snapcloud.models import SnapshotConfig
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


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a global option given on the command line (before or after the command)."""
    if value is not None and value is not False and param.name is not None:
        setattr(ctx.ensure_object(Globals), param.name, value)


def global_options(f: F) -> F:
    """Add ``--store``, ``--endpoint-url`` and ``--debug`` to a command or group."""
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
    ]
    for option in reversed(options):
        f = option(f)
    return f


def globals_() -> Globals:
    """The global options of the command being run."""
    return click.get_current_context().ensure_object(Globals)


def debug_env() -> bool:
    return os.environ.get("SNAPCLOUD_DEBUG", "") not in ("", "0")


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


def open_repo(*, debug_logs: bool = True, create: bool = False) -> Repository:
    """Open the store the global options name (then ``SNAPCLOUD_STORE``, then the embedded one).

    With ``--debug`` (and ``debug_logs``), every log record goes to stderr, secrets masked.
    Only commands that write new data pass ``create``: the others never make a store
    (a mistyped path is an error) and write nothing at open (a read-only mount works).
    """
    opts = globals_()
    if debug_logs and (opts.debug or debug_env()):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        for handler in logging.getLogger().handlers:  # every record, from any logger
            if secret_redacting_filter() not in handler.filters:
                handler.addFilter(secret_redacting_filter())
    return Repository.open(
        opts.store, endpoint_url=opts.endpoint_url, config=SnapshotConfig(), create=create
    )


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=None, separators=(",", ":"), default=str) + "\n")


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
        if opts.debug or "--debug" in args or debug_env():
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
        if opts.debug or "--debug" in args or debug_env():
            raise
        err.print(f"snapcloud: error: {exc.strerror or exc}: {exc.filename or ''}", markup=False)
        return 2
    return int(result) if isinstance(result, int) else 0


def entrypoint() -> None:
    """The ``snapcloud`` console script."""
    sys.exit(main())
