"""The ``snapcloud`` command line: a thin layer over the library."""

from __future__ import annotations

from snapcloud.cli import _data, _query, _record, _retention, _serve, _settings  # noqa: F401
from snapcloud.cli._app import cli, entrypoint, main

__all__ = ["cli", "entrypoint", "main"]
