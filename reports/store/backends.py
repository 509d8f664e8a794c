"""The two databases a store lives in: a SQLite file (the default, through Python's sqlite3) or
PostgreSQL (shared by several machines, through SQLAlchemy, imported only for it: a command on
the embedded store is a quarter of a second quicker without it).

Herald's SQL is written once, in SQLite's words with `?` placeholders, and translated here for
PostgreSQL, statement by statement: placeholders, `INSERT OR IGNORE`, `id INTEGER PRIMARY KEY`
(an identity column), the new row's id. So every table and query in runs.py, deliveries.py and
the alert book, and any table added to a store's schema later, works on both.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.logs import remember
from reports.store.faults import StoreError, _faults, postgres_fault

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, CursorResult, Engine

# Every writing transaction on PostgreSQL takes this transaction-level advisory lock first (one
# key per database), as every one on SQLite begins IMMEDIATE: a claim's read-then-write, or a run
# recording its deliveries, is then atomic between processes on any machine. Each holds it for
# milliseconds; reads take no lock.
LOCK_KEY = 0x48_65_72_61_6C_64  # "Herald"
_SPLIT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|;")
_TABLES = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE)
# One engine per process and PostgreSQL store, shared by its Store objects.
_ENGINES: dict[tuple[int, str], Engine] = {}
_MAKING = threading.Lock()


def is_address(location: Path | str) -> bool:
    """Whether `store:` names a database server (a URL) rather than a SQLite file."""
    return isinstance(location, str) and "://" in location


def table_names(schema: str) -> list[str]:
    return _TABLES.findall(schema)


def statements(schema: str) -> list[str]:
    """The statements of a schema, split at each `;` outside quotes and comments."""
    found, start = [], 0
    for match in _SPLIT.finditer(schema):
        if match.group() == ";":
            found.append(schema[start : match.start()])
            start = match.end()
    found.append(schema[start:])
    return [s for s in found if s.strip()]


def _after_fork() -> None:
    """A child forked while another thread made an engine must not inherit that thread's lock.
    Its parent's engines stay in `_ENGINES`, unused (keyed by the parent's pid): dropping them
    would let their connections be finalised in the child."""
    global _MAKING
    _MAKING = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _engine(key: str, make: Callable[[], Engine]) -> Engine:
    """This process's engine for a store: a forked child never uses its parent's connections."""
    slot = (os.getpid(), key)
    engine = _ENGINES.get(slot)
    if engine is None:
        with _MAKING:
            engine = _ENGINES.get(slot) or _ENGINES.setdefault(slot, make())
    return engine


@lru_cache(maxsize=256)
def _row_type(columns: tuple[str, ...]) -> type[tuple[Any, ...]]:
    """A row of these columns: a tuple whose values are also read by name (`row.status`), as
    SQLAlchemy's rows are on PostgreSQL. A name that is no identifier (`COUNT(*)`) becomes `_0`..."""
    return namedtuple("Row", columns, rename=True)


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> tuple[Any, ...]:
    return _row_type(tuple(d[0] for d in cursor.description))(*values)


class SqliteBackend:
    """A SQLite file: one connection per transaction (as cheap as a file open), WAL so readers
    never wait, synchronous=FULL so a recorded delivery survives a power cut."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        # Rendered messages stay files beside the database on SQLite: a message carries its
        # attachments (megabytes of PDF), which in SQLite's one-writer file would make every
        # forked worker wait on the others' writes, and grow the file that every claim reads.
        self.messages: Path | None = path.with_name(path.name + ".messages")

    def connect(self) -> sqlite3.Connection:
        # isolation_level=None: the transactions are Herald's own BEGINs, never the driver's.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = _row
        db.execute("PRAGMA synchronous=FULL")
        return db

    def dispose(self) -> None:
        """Nothing stays open between transactions."""

    def faults(self, connecting: bool = False) -> Any:
        return _faults(self.path)

    def begin(self, connection: sqlite3.Connection, lock: bool) -> None:
        connection.execute("BEGIN IMMEDIATE" if lock else "BEGIN")

    def execute(self, connection: sqlite3.Connection, sql: str, params: Sequence[Any] | None) -> Any:
        return connection.execute(sql, tuple(params or ()))

    def tables(self, connection: sqlite3.Connection) -> set[str]:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}

    def make(self, version: int, schema: str, added: dict[str, list[str]], indexes: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self.connect()
        try:
            run = connection.execute
            if run("PRAGMA user_version").fetchone()[0] >= version:
                return  # made already; many processes open it, and only a writer may change it
            if run("PRAGMA journal_mode").fetchone()[0] != "wal":
                run("PRAGMA journal_mode=WAL")  # persistent: readers never wait for a writer
            run("BEGIN IMMEDIATE")
            for statement in statements(schema):
                run(statement)
            for table, columns in added.items():
                present = {row[1] for row in run(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in present:
                        run(f"ALTER TABLE {table} ADD COLUMN {column}")
            run(indexes)
            run(f"PRAGMA user_version = {version}")
            connection.commit()
        finally:
            connection.close()


class PostgresBackend:
    """A PostgreSQL database of Herald's own, shared by every machine: a pool of connections per
    process, a lock per writing transaction, rendered messages kept in a table."""

    name = "postgresql"

    def __init__(self, address: str) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(address)
        except ArgumentError:
            raise StoreError(
                "the store's address is not a valid URL",
                "write it as postgresql://user:${PG_PASSWORD}@host:5432/database",
            ) from None
        self.where = url.render_as_string(hide_password=True)
        self.password = url.password if isinstance(url.password, str) else None
        remember(self.password)  # masked wherever a log line would show it
        self.url: URL = url.set(drivername="postgresql+psycopg")
        # Every machine reads the messages another recorded, so they live in the database.
        self.messages: Path | None = None

    @property
    def engine(self) -> Engine:
        return _engine(self.url.render_as_string(hide_password=False), self._make_engine)

    def connect(self) -> Connection:
        return self.engine.connect()

    def dispose(self) -> None:
        self.engine.dispose()

    def _make_engine(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        options: dict[str, Any] = {"application_name": "herald"}
        if "connect_timeout" not in self.url.query:
            options["connect_timeout"] = 10
        if "options" not in self.url.query:  # a writer waits for the lock as long as SQLite's busy timeout
            options["options"] = "-c lock_timeout=30000"
        try:
            return create_engine(self.url, pool_size=4, pool_pre_ping=True, connect_args=options)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise StoreError(
                f"the store {self.where} cannot be opened: {exc}",
                "write it as postgresql://user:${PG_PASSWORD}@host:5432/database",
            ) from None

    @contextmanager
    def faults(self, connecting: bool = False) -> Iterator[None]:
        from sqlalchemy.exc import DBAPIError

        try:
            yield
        except DBAPIError as exc:
            raise postgres_fault(self.where, exc, self.password, connecting) from None

    def begin(self, connection: Connection, lock: bool) -> None:
        if lock:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")

    def execute(self, connection: Connection, sql: str, params: Sequence[Any] | None) -> Any:
        text, inserting = _to_postgres(sql)
        result = connection.exec_driver_sql(text, tuple(params or ()))
        return _Inserted(result, connection) if inserting else result

    def tables(self, connection: Connection) -> set[str]:
        rows = connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        return {name for (name,) in rows}

    def make(self, version: int, schema: str, added: dict[str, list[str]], indexes: str) -> None:
        """Make or bring up to date the tables, once, whoever gets there first; refuse a database
        that holds other tables than Herald's (it is someone else's)."""
        with self.faults(connecting=True):
            connection = self.connect()
        with self.faults(), connection:
            if self._version(connection) >= version:
                return
            self.begin(connection, lock=True)
            have = self._version(connection)
            if have >= version:
                return
            if have < 0 and (others := self.tables(connection)):
                raise StoreError(
                    f"the database of the store {self.where} is not a Herald store: it holds other "
                    f"tables ({', '.join(sorted(others)[:3])})",
                    "give Herald an empty database of its own (createdb -O herald herald) and name it in `store:`",
                )
            for statement in statements(schema):
                connection.exec_driver_sql(_ddl(statement))
            for table, columns in added.items():
                for column in columns:
                    connection.exec_driver_sql(_ddl(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"))
            connection.exec_driver_sql(indexes)
            connection.exec_driver_sql(_ddl(MESSAGES))
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS herald_store (version BIGINT NOT NULL)")
            connection.exec_driver_sql("DELETE FROM herald_store")
            connection.exec_driver_sql("INSERT INTO herald_store (version) VALUES (%s)", (version,))
            connection.commit()

    def _version(self, connection: Connection) -> int:
        """The schema version this database holds; -1 when it is no Herald store (yet)."""
        found = connection.exec_driver_sql("SELECT to_regclass('herald_store') IS NOT NULL").scalar()
        if not found:
            return -1
        return int(connection.exec_driver_sql("SELECT MAX(version) FROM herald_store").scalar() or 0)


# Where a PostgreSQL store keeps rendered messages, by content; `deliveries.message` says
# `store:<content hash>` for these, or names a file (SQLite).
MESSAGES = "CREATE TABLE IF NOT EXISTS messages (content_hash TEXT PRIMARY KEY, body BLOB NOT NULL)"
MESSAGE_PREFIX = "store:"

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\b", re.IGNORECASE)
_DDL = re.compile(r"^\s*(?:--[^\n]*\n\s*)*(?:CREATE|ALTER)\s+TABLE\b", re.IGNORECASE)
_IDENTITY = re.compile(r"\b(\w+)\s+INTEGER\s+PRIMARY\s+KEY(?:\s+AUTOINCREMENT)?\b", re.IGNORECASE)
_TYPES = {"INTEGER": "BIGINT", "BLOB": "BYTEA", "REAL": "DOUBLE PRECISION", "DATETIME": "TEXT"}
_TYPE = re.compile(rf"\b({'|'.join(_TYPES)})\b", re.IGNORECASE)


@lru_cache(maxsize=1024)
def _to_postgres(sql: str) -> tuple[str, bool]:
    """Herald's SQL for PostgreSQL (psycopg's `%s` placeholders), and whether it inserts rows."""
    sql = _ddl(sql)

    def swap(match: re.Match[str]) -> str:  # psycopg reads `%` everywhere, quotes and comments too
        token = match.group()
        return "%s" if token == "?" else token.replace("%", "%%")

    sql = _TOKENS.sub(swap, sql)
    if _OR_IGNORE.match(sql):
        sql = _OR_IGNORE.sub("INSERT INTO", sql).rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return sql, bool(_INSERT.match(sql))


def _ddl(sql: str) -> str:
    """SQLite's column types in PostgreSQL's words: `id INTEGER PRIMARY KEY` is an identity."""
    if not _DDL.match(sql):
        return sql
    sql = _IDENTITY.sub(r"\1 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
    return _TYPE.sub(lambda m: _TYPES[m.group().upper()], sql)


class _Inserted:
    """An INSERT's result on PostgreSQL, with SQLite's `lastrowid`: the id the row was given
    (asked of the session only when read)."""

    def __init__(self, result: CursorResult[Any], connection: Connection) -> None:
        self._result, self._connection = result, connection

    @property
    def lastrowid(self) -> int | None:
        if self._result.rowcount < 1:
            return None  # ON CONFLICT DO NOTHING inserted nothing
        return int(self._connection.exec_driver_sql("SELECT lastval()").scalar_one())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._result)
