"""Importers: files from other tools to metric series and snapshots."""

from __future__ import annotations

from snapcloud.importers.csv import (
    ImportOutcome,
    append_windows,
    cut_windows,
    import_files,
    read_csv,
)

__all__ = ["ImportOutcome", "append_windows", "cut_windows", "import_files", "read_csv"]
