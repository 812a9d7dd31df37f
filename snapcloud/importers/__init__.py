"""Importers: files from other tools to metric series and snapshots."""

from __future__ import annotations

from snapcloud.importers.csv import cut_windows, import_files, read_csv

__all__ = ["cut_windows", "import_files", "read_csv"]
