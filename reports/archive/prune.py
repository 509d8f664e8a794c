"""Retention: `archive: {keep_days: N}` deletes output files older than N days under out/ (the
reports, message copies and outbox files of each job and as-of date), and keeps the store's run
and delivery log and the audit log. `run.py prune` runs it; `serve` runs it once a day."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from reports.archive.record import inside
from reports.config.models import HeraldConfig
from reports.store import Store, now_utc
from reports.store.archive import Archive

log = logging.getLogger("herald.prune")
EVERY = timedelta(days=1)


@dataclass
class Pruned:
    files: int = 0
    bytes: int = 0
    folders: int = 0


def prune(config: HeraldConfig, store: Store, out: Path, now: datetime | None = None) -> Pruned | None:
    """Delete what retention no longer keeps; None when `archive.keep_days` is unset."""
    keep = config.archive.keep_days
    if keep is None:
        return None
    now = now or now_utc()
    cutoff = now - timedelta(days=keep)
    archive, done = Archive(store), Pruned()
    old = archive.older_than(cutoff)
    for output in old:  # recorded outputs: the file goes, the row stays, marked pruned
        found = inside(Path(output.path), out)
        if found is not None:
            done.bytes += found.stat().st_size
            found.unlink()
            done.files += 1
    archive.mark_pruned([o.id for o in old])
    # Whatever else was written under a job's folders that long ago: files from before the
    # archive recorded outputs, message copies, the outbox. Files, by when they were written.
    for job in config.reports:
        for root in (out / job, out / "outbox" / job):
            _sweep(root, cutoff.timestamp(), done)
    archive.audit(
        "herald",
        "prune",
        f"outputs before {cutoff.isoformat(timespec='minutes')}",
        f"{done.files} files, {done.bytes} bytes, {done.folders} folders",
        at=now,
    )
    log.info(
        "pruned %d files (%d bytes) older than %d days",
        done.files,
        done.bytes,
        keep,
        extra={"event": "pruned"},
    )
    return done


def _sweep(root: Path, before: float, done: Pruned) -> None:
    """Delete the files under `root` last written before `before`, then the folders left empty;
    links are neither followed nor deleted."""
    if not root.is_dir() or root.is_symlink():
        return
    for folder, _subfolders, files in os.walk(root, topdown=False):
        here = Path(folder)
        for name in files:
            path = here / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_mtime < before:
                path.unlink()
                done.files += 1
                done.bytes += info.st_size
        if here != root and here.stat().st_mtime < before and not any(here.iterdir()):
            here.rmdir()
            done.folders += 1


def prune_daily(config: HeraldConfig, store: Store, out: Path, now: datetime | None = None) -> None:
    """Under `serve`: prune when `keep_days` is set and a day has passed since the last prune
    (by any process sharing the store)."""
    if config.archive.keep_days is None:
        return
    now = now or now_utc()
    last = Archive(store).last("prune")
    if last is not None and now - datetime.fromisoformat(last) < EVERY:
        return
    try:
        prune(config, store, out, now)
    except OSError as exc:  # the disk: say so; the scheduler goes on, and tries again tomorrow
        log.error("pruning %s failed: %s", out, exc, extra={"event": "error"})
