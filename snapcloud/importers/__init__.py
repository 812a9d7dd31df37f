"""Importers: files from other tools to metric series and snapshots."""

from __future__ import annotations

from snapcloud.importers.csv import (
    ImportedFile,
    ImportOutcome,
    append_windows,
    cut_windows,
    import_files,
    read_csv,
    read_table,
)

__all__ = [
    "ImportOutcome",
    "ImportedFile",
    "append_windows",
    "cut_windows",
    "import_files",
    "read_csv",
    "read_table",
]
