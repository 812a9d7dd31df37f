"""A progress bar on stderr for long commands, drawn from the library's progress callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from snapcloud.cli._app import err, human_bytes
from snapcloud.progress import ProgressCallback, ProgressUpdate


class _BytesColumn(ProgressColumn):
    """Bytes so far and their rate: ``12.5 MiB, 3.1 MiB/s``."""

    def render(self, task: Task) -> Text:
        moved = int(task.fields.get("nbytes", 0))
        elapsed = task.elapsed or 0.0
        rate = f", {human_bytes(moved / elapsed)}/s" if elapsed > 0.5 else ""
        return Text(f"{human_bytes(moved)}{rate}")


def wanted(as_json: bool = False) -> bool:
    """Whether to draw a bar: stderr is a terminal, and the output is not ``--json``."""
    return err.is_terminal and not as_json


@contextmanager
def progress_bar(action: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A callback drawing ``action``'s progress on stderr while the block runs (``None``
    when not ``enabled``: piped, or ``--json``). The bar goes when the block ends."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        _BytesColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(action, total=None, unit="", nbytes=0)

        def update(u: ProgressUpdate) -> None:
            label = f"{action} {u.label}" if u.label else action
            bar.update(
                task,
                completed=u.done,
                total=u.total,
                unit=u.unit,
                nbytes=u.bytes,
                description=label,
            )

        yield update
