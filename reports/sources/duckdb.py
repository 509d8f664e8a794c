"""The embedded warehouse: a DuckDB file, opened read-only.

Read-only stops writes to the file, not a `COPY ... TO` another file, so DuckDB's own parser also
checks that each query is one SELECT, and only that parsed statement runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
from pydantic import Field

from reports.errors import SourceError
from reports.sources import Source, SourceCheck, SourceConfig, bind_style, parameters_in, register
from reports.sources.hours import HourSql
from reports.sources.statements import ONE_SELECT, not_a_select, require_one


class DuckDBConfig(SourceConfig):
    type: Literal["duckdb"] = Field(description="`duckdb`: an embedded DuckDB file.")
    path: Path = Field(description="The DuckDB file, relative to config.yaml.")
    threads: int | None = Field(None, ge=1, description="Threads DuckDB may use; all cores when unset.")


# epoch_us reads a naive hour as UTC, whatever the session's TimeZone.
HOUR_SQL = HourSql(
    micros="epoch_us({hour})",
    divide="({a}) // {b}",
    finite="isfinite(CAST({x} AS DOUBLE))",
    infinite="isinf(CAST({x} AS DOUBLE))",
    bit="(CAST(1 AS BIGINT) << ({k}))",
)


MAX_ENUM = 100_000  # ids written into a query's text as an ENUM; more are read as strings


def _bound(sql: str) -> str:
    return bind_style(sql, lambda name: f"${name}")


def _sql_error(exc: duckdb.Error) -> SourceError:
    return SourceError(str(exc).strip().splitlines()[0], "fix the SQL and run `validate` again")


def _statement(sql: str) -> duckdb.Statement:
    """The one SELECT statement in `sql`, as DuckDB parses it; SourceError for anything else."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise _sql_error(exc) from None
    if len(statements) > 1 and not statements[1].query:
        # DuckDB itself expanded one statement into several; say which and how to avoid it.
        raise SourceError(
            f"DuckDB runs this query as {len(statements)} statements, as it does a PIVOT without an IN list",
            f"{ONE_SELECT}; name the PIVOT's values: PIVOT ... ON column IN ('a', 'b') USING ...",
        )
    require_one([s.query.strip() for s in statements])
    if statements[0].type != duckdb.StatementType.SELECT:
        raise not_a_select(statements[0].type.name)
    return statements[0]


@register
class DuckDBSource(Source):
    type_name = "duckdb"
    config_model = DuckDBConfig
    config: DuckDBConfig

    def __init__(self, name: str, config: DuckDBConfig, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        self.path = config.path if config.path.is_absolute() else base_dir / config.path
        self._connection: duckdb.DuckDBPyConnection | None = None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            if not self.path.exists():
                raise SourceError(
                    f"source '{self.name}': the DuckDB file {self.path} does not exist",
                    f"build the demo warehouse with `python run.py demo-data --out {self.path}`",
                )
            options = {"threads": self.config.threads} if self.config.threads else {}
            try:
                self._connection = duckdb.connect(str(self.path), read_only=True, config=options)
            except duckdb.Error as exc:
                raise SourceError(
                    f"source '{self.name}': cannot open {self.path}: {exc}",
                    "check that the file is a DuckDB database",
                ) from None
        return self._connection

    @property
    def hour_sql(self) -> HourSql:
        return HOUR_SQL

    def known_entities(self, sql: str, known: list[str]) -> str | None:
        """An ENUM of the known ids: DuckDB hands it to pandas as a categorical, where each id as a
        Python string per row cost a third of reading a large KPI."""
        if not known or len(known) > MAX_ENUM or not all(isinstance(k, str) for k in known):
            return None
        values = ", ".join("'" + k.replace("'", "''") + "'" for k in dict.fromkeys(known))
        # Lines of their own around the KPI's SQL, so a closing `-- comment` cannot swallow the rest.
        return f"SELECT CAST(entity AS ENUM({values})) AS entity, * EXCLUDE (entity)\nFROM (\n{sql}\n) AS herald_kpi"

    def one_select(self, sql: str) -> str:
        _statement(_bound(sql))
        return sql

    def check(self, sql: str, params: Mapping[str, Any]) -> SourceCheck:
        # DESCRIBE plans the query without reading data and, unlike a wrapping sub-query, accepts
        # the statement's own closing `;`.
        sql = self.one_select(sql)
        frame = self._run(f"DESCRIBE {sql}", {n: params[n] for n in parameters_in(sql)})
        return SourceCheck([str(c) for c in frame["column_name"]], None)

    def _run(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        statement = _statement(_bound(sql))  # run the parsed statement, so nothing after it can
        connection = self._connect()
        try:
            return connection.execute(statement, params).df()
        except duckdb.Error as exc:
            raise _sql_error(exc) from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
