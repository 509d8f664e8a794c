"""Warehouse sources: one small interface, types registered by name.

A source knows SQL and connections, nothing of rules, reports or channels. KPI SQL
names its parameters `@start`, `@end`, `@as_of` and `@entities`; each source binds
them in its own driver's style, never by formatting values into the text. SQL comes from config,
which is untrusted: a query runs only if it is exactly one SELECT statement, checked before it runs.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from reports.config.base import HeraldModel
from reports.errors import SourceError
from reports.registry import Registry
from reports.sources.hours import HourSql
from reports.sources.statements import LEXICONS, STANDARD, only_select

# Strings, quoted identifiers and comments are copied as they are; `@name` outside them is a parameter.
_TOKENS = re.compile(
    r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(`[^`]*`)|(--[^\n]*)|(/\*.*?\*/)|@([A-Za-z_][A-Za-z0-9_]*)""",
    re.DOTALL,
)


def parameters_in(sql: str) -> list[str]:
    """The `@name` parameters a query uses, in order of first use."""
    names = [m[6] for m in _TOKENS.finditer(sql) if m[6]]
    return list(dict.fromkeys(names))


def bind_style(sql: str, placeholder: Callable[[str], str]) -> str:
    """Rewrite `@name` parameters into a driver's placeholder syntax."""
    return _TOKENS.sub(lambda m: placeholder(m[6]) if m[6] else m[0], sql)


@dataclass(frozen=True)
class SourceCheck:
    columns: list[str]
    bytes_scanned: int | None  # None where the warehouse does not estimate


class SourceConfig(HeraldModel):
    """Fields every source type shares; each type adds its own."""

    type: str


class Source(ABC):
    """A warehouse connection that runs parameterised SQL and returns a DataFrame."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]

    def __init__(self, name: str, config: SourceConfig, base_dir: Path) -> None:
        self.name = name
        self.config = config
        self.base_dir = base_dir
        self.queries_run = 0
        self.labels: dict[str, str] = {}  # who is asking (job, run), for warehouses that bill by query

    @property
    def dialect(self) -> str:
        """The SQL dialect, which picks a KPI's per-dialect SQL (`sql: {duckdb: ..., bigquery: ...}`)."""
        return self.type_name

    @property
    def hour_sql(self) -> HourSql | None:
        """The dialect's pieces for folding hourly KPIs into local days in the warehouse
        (`reports.sources.hours`); None where Herald folds them itself, in pandas."""
        return None

    def known_entities(self, sql: str, known: list[str]) -> str | None:
        """`sql` (one SELECT, no closing `;`) wrapped to return its `entity` column as one of the
        `known` ids, typed so the rows arrive as a categorical rather than a string object per
        row; the wrapper fails on an id it does not know. None where the source cannot."""
        return None

    def one_select(self, sql: str) -> str:
        """The query's one SELECT statement, ready to run; SourceError, before anything runs, when
        `sql` holds more than one statement or one that is not a SELECT. Config is untrusted."""
        return only_select(sql, LEXICONS.get(self.dialect, STANDARD))

    def check(self, sql: str, params: Mapping[str, Any]) -> SourceCheck:
        """Plan the query without reading data: its columns, and bytes it would scan where known."""
        sql = self.one_select(sql)
        used = parameters_in(sql)
        # On lines of their own, so a closing `-- comment` cannot swallow the wrapper's end.
        frame = self._run(f"SELECT * FROM (\n{sql}\n) AS herald_check LIMIT 0", {n: params[n] for n in used})
        return SourceCheck([str(c) for c in frame.columns], None)

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run `sql`, exactly one SELECT statement, with the parameters it names bound from `params`."""
        sql = self.one_select(sql)
        used = parameters_in(sql)
        missing = [name for name in used if name not in params]
        if missing:
            allowed = ", ".join(f"@{p}" for p in params)
            raise SourceError(
                f"the query uses @{missing[0]}, which Herald does not provide",
                f"use only {allowed}",
            )
        self.queries_run += 1
        return self._run(sql, {name: params[name] for name in used})

    @abstractmethod
    def _run(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        """Execute one query; raise SourceError with the warehouse's own words on failure."""

    def close(self) -> None:  # noqa: B027 — most sources have nothing to release
        """Release connections."""


SOURCES: Registry[type[Source]] = Registry("source type", lambda cls: cls.type_name)
register = SOURCES.register  # class decorator: available to config.yaml by its `type_name`


def source_types() -> dict[str, type[Source]]:
    return SOURCES.as_dict()


def open_source(name: str, config: SourceConfig, base_dir: Path) -> Source:
    return SOURCES[config.type](name, config, base_dir)


# Built-in types register themselves on import, the same way a third-party type would.
import reports.sources.bigquery  # noqa: E402
import reports.sources.duckdb  # noqa: E402
import reports.sources.sql  # noqa: E402, F401
