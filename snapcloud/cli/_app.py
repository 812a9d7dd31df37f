"""The Typer app, the options every command shares, and the error boundary.

Commands parse, call the library, and render; nothing here is needed by a
library user. Library errors become one line on stderr and exit status 2
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from snapcloud.backends import secret_redacting_filter
from snapcloud.errors import SnapcloudError
from snapcloud.models import SnapshotConfig
from snapcloud.store import Repository

app = typer.Typer(
    name="snapcloud",
    help="Fleet-wide CPU/GPU profiling on object storage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="SNAPCLOUD_STORE",
        help="file:///path, s3://bucket/prefix or memory:// (default: the embedded store).",
        show_envvar=True,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="SNAPCLOUD_ENDPOINT_URL",
        help="S3 endpoint for MinIO, Ceph, R2 or a moto server.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks and debug logs.", envvar="SNAPCLOUD_DEBUG")
]


def open_repo(
    store: str | None, endpoint_url: str | None, debug: bool = False, *, create: bool = False
) -> Repository:
    """Open the store a command names (flags, then environment, then the embedded default).

    Only commands that write new data pass ``create``: the others never make a store
    (a mistyped path is an error) and write nothing at open (a read-only mount works).
    """
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        for handler in logging.getLogger().handlers:  # every record, from any logger
            if secret_redacting_filter() not in handler.filters:
                handler.addFilter(secret_redacting_filter())
    return Repository.open(store, endpoint_url=endpoint_url, config=SnapshotConfig(), create=create)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=None, separators=(",", ":"), default=str) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv``; return the exit status (0 ok, 1 problems found, 2 bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("SNAPCLOUD_DEBUG", "") not in ("", "0")
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="snapcloud", standalone_mode=False)
    except SnapcloudError as exc:
        if debug:
            raise
        err.print(f"snapcloud: error: {exc}", markup=False)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        err.print("snapcloud: aborted", markup=False)
        return 130
    except (BrokenPipeError, KeyboardInterrupt):
        return 130
    except OSError as exc:
        if debug:
            raise
        err.print(f"snapcloud: error: {exc.strerror or exc}: {exc.filename or ''}", markup=False)
        return 2
    return int(result) if isinstance(result, int) else 0


def entrypoint() -> None:
    """The ``snapcloud`` console script."""
    sys.exit(main())
