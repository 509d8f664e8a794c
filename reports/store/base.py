"""The store's plumbing: one database (a SQLite file, or PostgreSQL), one transaction at a time,
faults said plainly, and who holds a lease."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.store.backends import (
    PostgresBackend,
    SqliteBackend,
    is_address,
    statements,
    table_names,
)
from reports.store.faults import StoreError, _fault, _faults
from reports.store.schema import ADDED, INDEXES, SCHEMA, VERSION

__all__ = [
    "Database",
    "StoreError",
    "Transaction",
    "_fault",
    "_faults",
    "_stamp",
    "holder_is_dead",
    "now_utc",
    "process_id",
]


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


class Transaction:
    """What `Database.transaction()` yields: `execute(sql, params)` runs Herald's SQL, written
    in SQLite's words with `?` placeholders, on whichever database the store is. Its result has
    `fetchone()`, `fetchall()`, `scalar()`, `rowcount`, `lastrowid` (after an INSERT) and rows
    when iterated."""

    def __init__(self, connection: Any, backend: SqliteBackend | PostgresBackend) -> None:
        self._connection, self._backend = connection, backend

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        if isinstance(params, Mapping):
            raise TypeError("the store's SQL takes `?` placeholders and a sequence of values")
        return self._backend.execute(self._connection, sql, params)


class Database:
    """The store's database, made on first use; `transaction()` is the only way in.

    `location` is a SQLite file, or a PostgreSQL URL (`postgresql://user:password@host:5432/db`)
    for a store that processes on several machines share."""

    def __init__(self, location: Path | str) -> None:
        self.backend: SqliteBackend | PostgresBackend = (
            PostgresBackend(location) if is_address(location) else SqliteBackend(Path(location))
        )
        self.path = self.backend.path if isinstance(self.backend, SqliteBackend) else None
        self.where = self.backend.where  # how errors and logs name it: never with its password
        self.messages = self.backend.messages  # rendered messages' folder; None: kept in the database
        with self.backend.faults():
            self.backend.make(VERSION, SCHEMA, ADDED, INDEXES)

    @contextmanager
    def transaction(self, lock: bool = True) -> Iterator[Transaction]:
        """One transaction. With `lock` (the default) no other process writes while it runs, so
        a read-then-write (a claim) is atomic between processes: SQLite begins IMMEDIATE,
        PostgreSQL takes Herald's advisory lock. `lock=False` is for reads and for writes that
        cannot conflict."""
        backend = self.backend
        with backend.faults(connecting=True):
            connection = backend.connect()
        try:
            with backend.faults():
                backend.begin(connection, lock)
            try:
                with backend.faults():
                    yield Transaction(connection, backend)
            except BaseException:
                with suppress(Exception):  # a lost connection has nothing left to roll back
                    connection.rollback()
                raise
            with backend.faults():
                connection.commit()
        finally:
            with suppress(Exception):
                connection.close()

    def close(self) -> None:
        """Close this process's idle connections to the store (they reopen when next used)."""
        self.backend.dispose()

    def tables(self) -> set[str]:
        """The names of the tables the store holds."""
        with self.transaction(lock=False) as db:
            return self.backend.tables(db._connection)

    def create_tables(self, schema: str) -> None:
        """Make the tables of `schema` (`CREATE TABLE IF NOT EXISTS ...;` statements in SQLite's
        words, e.g. `id INTEGER PRIMARY KEY`) that the store does not hold yet."""
        if set(table_names(schema)) <= self.tables():
            return  # the common case, and a read: no writer waits for it
        with self.transaction() as db:
            for statement in statements(schema):
                db.execute(statement)
