"""What goes wrong with a store, said in one line with its fix, and never with a password."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from reports.errors import HeraldError

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError


class StoreError(HeraldError):
    """The store cannot be read or written: the disk is full, the file is not a store, the
    database cannot be reached..."""


@contextmanager
def _faults(path: Path) -> Iterator[None]:
    """A SQLite store's faults (and its messages folder's), said plainly."""
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


# SQLSTATE classes and codes PostgreSQL answers with (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_LOGIN = ("28P01", "28000")  # invalid password, invalid authorization (no such role, pg_hba refusal)
_NO_DATABASE = "3D000"
_DENIED = ("42501", "3F000")  # insufficient privilege; no schema it may create tables in
_BUSY = ("55P03", "57014")  # lock not available, query canceled (lock_timeout)


def postgres_fault(where: str, exc: DBAPIError, password: str | None, connecting: bool) -> StoreError:
    """One line for a PostgreSQL store's fault: `where` is its address without the password."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or ""
    text = " ".join(str(orig or exc).split())
    if password:
        text = text.replace(password, "***")
    lowered = text.lower()
    if (
        code in _LOGIN
        or "authentication failed" in lowered
        or "no password supplied" in lowered
        or ("role" in lowered and "does not exist" in lowered)
    ):
        return StoreError(
            f"the store {where} refused Herald's login ({_reason(text)})",
            "check the user and password in `store:` (the password from the environment, e.g. "
            "${PG_PASSWORD}) and that pg_hba.conf lets this machine in",
        )
    if code == _NO_DATABASE or ("database" in lowered and "does not exist" in lowered):
        return StoreError(
            f"the store {where} does not exist ({_reason(text)})",
            "create it (createdb -O herald herald), or fix the database name in `store:`",
        )
    if code in _DENIED:
        return StoreError(
            f"the store {where} cannot be written: {_reason(text)}",
            "give Herald's user its own database (createdb -O herald herald), or grant it CREATE and write access",
        )
    if code in _BUSY:
        return StoreError(
            f"the store {where} was busy for too long: {_reason(text)}",
            "see which session holds Herald's lock (pg_locks) and try again",
        )
    if connecting or exc.connection_invalidated or code.startswith("08") or code.startswith("57P"):
        return StoreError(
            f"cannot reach the store {where} ({_reason(text)})",
            "start PostgreSQL, or fix the host and port in `store:`; nothing was sent that it did not record",
        )
    return StoreError(
        f"the store {where} cannot be used: {_reason(text)}",
        "see PostgreSQL's log; nothing was sent that it did not record",
    )


def _reason(text: str) -> str:
    """The part of a driver's message that says what happened, e.g. 'Connection refused'."""
    reason = text.rpartition(" failed: ")[2] if " failed: " in text else text
    reason = reason.removeprefix("FATAL: ").removeprefix("ERROR: ").strip()
    for tail in (" Is the server running", " LINE "):  # advice for libpq users; the SQL quoted
        reason = reason.split(tail)[0]
    return reason[:200].rstrip(" .")
