"""Any SQL database SQLAlchemy reaches (PostgreSQL tested): bound parameters, a pool, a timeout.

Each query is one SELECT (split with the dialect's quoting rules before it runs) inside a read-only
transaction on PostgreSQL; on other databases, give Herald a user that can only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import Field

from reports.errors import SourceError
from reports.sources import Source, SourceConfig, bind_style, register
from reports.sources.hours import HourSql

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# Said first in each query's transaction (which is never committed), so the database itself
# refuses any write, whatever the SQL does.
READ_ONLY = {"postgresql": "SET TRANSACTION READ ONLY"}
# Hourly KPIs fold into local days in the database where its dialect is known. EXTRACT(EPOCH)
# reads a naive hour as UTC, whatever the session's TimeZone; `/` of integers rounds down.
HOUR_SQL = {
    "postgresql": HourSql(
        micros="CAST(EXTRACT(EPOCH FROM {hour}) * 1000000 AS BIGINT)",
        divide="({a}) / {b}",
        finite="CAST({x} AS DOUBLE PRECISION) NOT IN ('Infinity', '-Infinity', 'NaN')",
        infinite="CAST({x} AS DOUBLE PRECISION) IN ('Infinity', '-Infinity')",
        bit="(CAST(1 AS BIGINT) << CAST({k} AS INTEGER))",
    )
}


class SqlConfig(SourceConfig):
    type: Literal["sql"] = Field(description="`sql`: a database reached through SQLAlchemy.")
    url: str = Field(description="e.g. `postgresql+psycopg://herald:${PG_PASSWORD}@db:5432/analytics`.")
    pool_size: int = Field(2, ge=1, le=50, description="Connections kept open.")
    statement_timeout: float = Field(300, gt=0, le=21600, description="Seconds a query may run (PostgreSQL).")
    connect_timeout: float = Field(10, gt=0, le=600, description="Seconds to wait for a connection.")


@register
class SqlSource(Source):
    type_name = "sql"
    config_model = SqlConfig
    config: SqlConfig

    def __init__(self, name: str, config: SqlConfig, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        self._engine: Engine | None = None

    @property
    def dialect(self) -> str:
        from sqlalchemy.engine import make_url  # on first use: SQLAlchemy costs a quarter of a second
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(self.config.url).get_backend_name()
        except ArgumentError:
            return "sql"

    @property
    def hour_sql(self) -> HourSql | None:
        return HOUR_SQL.get(self.dialect)

    def _connect(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        if self._engine is None:
            options: dict[str, Any] = {"connect_timeout": int(self.config.connect_timeout)}
            if self.dialect == "postgresql":
                options["options"] = f"-c statement_timeout={int(self.config.statement_timeout * 1000)}"
            try:
                self._engine = create_engine(
                    self.config.url, pool_size=self.config.pool_size, pool_pre_ping=True, connect_args=options
                )
            except (ArgumentError, NoSuchModuleError) as exc:
                raise SourceError(
                    f"source '{self.name}': the url is not usable: {exc}",
                    "write it as dialect+driver://user:${PASSWORD}@host:port/database",
                ) from None
        return self._engine

    def _run(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        from sqlalchemy import bindparam, text
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        statement = text(bind_style(sql, lambda name: f":{name}"))
        lists = [bindparam(n, expanding=True) for n, v in params.items() if isinstance(v, list | tuple)]
        if lists:
            statement = statement.bindparams(*lists)
        try:
            with self._connect().connect() as connection:
                if self.dialect in READ_ONLY:
                    connection.exec_driver_sql(READ_ONLY[self.dialect])
                result = connection.execute(statement, params)
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        except DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            if exc.connection_invalidated or "connect" in first.lower() or "refused" in first.lower():
                raise SourceError(
                    f"source '{self.name}': cannot connect: {first}",
                    "check the url, and that the database is up",
                ) from None
            raise SourceError(first, "fix the SQL and run `validate --check-sources` again") from None
        except SQLAlchemyError as exc:
            raise SourceError(
                f"source '{self.name}': {type(exc).__name__}: {exc}", "check the url and the SQL"
            ) from None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
