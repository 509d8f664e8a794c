"""The store's plumbing: one file, one transaction at a time, faults said plainly, and who holds a lease."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from reports.errors import HeraldError
from reports.store.schema import ADDED, INDEXES, SCHEMA, VERSION


class StoreError(HeraldError):
    """The store cannot be read or written: the disk is full, the file is not a store..."""


@contextmanager
def _faults(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _fault(path, exc) from None
    except OSError as exc:
        raise StoreError(
            f"the store {path} cannot be written: {exc.strerror or exc}",
            "free disk space, fix its folder's permissions, or set `store:` to another file",
        ) from None


def _fault(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StoreError(
            f"{path} is not a Herald store ({text})", "move the file away, or set `store:` to another file"
        )
    return StoreError(
        f"the store {path} cannot be used: {text}",
        "free disk space or fix the file's permissions; nothing was sent that it did not record",
    )


def process_id() -> str:
    """Who holds a lease: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(owner: str | None) -> bool:
    """Whether a lease's holder is a process on this host that no longer exists."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def now_utc() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None = None) -> str:
    return (moment or now_utc()).astimezone(UTC).isoformat(timespec="seconds")


class Database:
    """The SQLite file, made on first use; `transaction()` is the only way in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages = path.with_name(path.name + ".messages")  # rendered messages, by content
        with _faults(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._make()

    def _make(self) -> None:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version >= VERSION:
                return  # made already; many processes open it, and only a writer may change it
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never wait for a writer
            db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            for table, columns in ADDED.items():
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            db.execute(INDEXES)
            db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; BEGIN IMMEDIATE so a read-then-write (a claim) is atomic between processes."""
        with _faults(self.path):
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                with _faults(self.path):
                    yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            with _faults(self.path):
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _fault(self.path, exc) from None
        finally:
            db.close()
