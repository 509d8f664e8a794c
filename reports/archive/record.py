"""Record a run's output files in the store as they are written, with who each is for, so the
archive can serve them by id to their recipients only."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from reports.store.archive import EVERYONE, Archive, NewOutput

if TYPE_CHECKING:
    from reports.render.outputs import Rendered
    from reports.store import Store

MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def inside(path: Path, root: Path) -> Path | None:
    """`path` resolved, if it is a regular file inside `root` (no link leads out of it)."""
    try:
        resolved = path.resolve(strict=True)
        resolved.relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError):
        return None
    return resolved if resolved.is_file() else None


def media_type(path: Path) -> str:
    return (
        MEDIA_TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


def record_outputs(store: Store, run_id: int, folder: Path, rendered: list[Rendered]) -> int:
    """Record the files of every rendered report of a run, and the run's findings.json."""
    return Archive(store).record_outputs(run_id, _outputs(folder, rendered))


def _outputs(folder: Path, rendered: list[Rendered]) -> Iterator[NewOutput]:
    findings = folder / "findings.json"
    if findings.is_file():
        yield _output(findings, EVERYONE, "Everyone", "", None, None, None)
    seen = {findings.resolve()}
    for done in rendered:
        recipient = done.report.recipient
        scoped = recipient.entities is not None  # everyone's report has no entity list
        for path in done.files:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            yield _output(
                path,
                recipient.key if scoped else EVERYONE,
                recipient.label,
                recipient.slug if scoped else "",
                recipient.email if scoped else None,
                recipient.slack if scoped else None,
                recipient.entities if scoped else None,
            )


def _output(
    path: Path,
    key: str,
    label: str,
    folder: str,
    email: str | None,
    slack: str | None,
    entities: tuple[str, ...] | None,
) -> NewOutput:
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    return NewOutput(
        key, label, folder, email, slack, entities, path.name, str(path.resolve()), media_type(path), size
    )
