"""The embedded warehouse: a DuckDB file, opened read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
from pydantic import Field

from reports.errors import SourceError
from reports.sources import Source, SourceConfig, bind_style, register


class DuckDBConfig(SourceConfig):
    type: Literal["duckdb"] = Field(description="`duckdb`: an embedded DuckDB file.")
    path: Path = Field(description="The DuckDB file, relative to config.yaml.")
    threads: int | None = Field(None, ge=1, description="Threads DuckDB may use; all cores when unset.")


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

    def _run(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        connection = self._connect()
        try:
            return connection.execute(bind_style(sql, lambda name: f"${name}"), params).df()
        except duckdb.Error as exc:
            raise SourceError(
                str(exc).strip().splitlines()[0], "fix the SQL and run `validate` again"
            ) from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
