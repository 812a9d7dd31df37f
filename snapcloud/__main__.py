"""``python -m snapcloud`` runs the CLI."""

from snapcloud.cli import entrypoint

entrypoint()
