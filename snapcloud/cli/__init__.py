"""The ``snapcloud`` command line: a thin layer over the library."""

from __future__ import annotations

from snapcloud.cli import _data, _query, _record, _retention, _serve  # noqa: F401  (register commands)
from snapcloud.cli._app import app, entrypoint, main

__all__ = ["app", "entrypoint", "main"]
