"""BigQuery through google-cloud-bigquery: typed named parameters, a cap on bytes billed, dry-run
estimates, job labels for cost attribution, retries and timeouts.

Credentials come from a service-account file named by an environment variable, or from
Application Default Credentials. `api_endpoint` with `anonymous: true` points at an emulator.

Every query is split locally first, then dry-run: only a dry run whose statement type is SELECT
goes on to run, so scripts, DML and DDL are refused before BigQuery executes anything.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from reports.errors import SourceError
from reports.sources import Source, SourceCheck, SourceConfig, parameters_in, register
from reports.sources.hours import HourSql
from reports.sources.statements import not_a_select, several_statements


class BigQueryConfig(SourceConfig):
    type: Literal["bigquery"] = Field(description="`bigquery`: Google BigQuery.")
    project: str = Field(description="The project queries run (and are billed) in.")
    dataset: str | None = Field(None, description="Default dataset, so KPI SQL can name tables alone.")
    location: str | None = Field(None, description="Where jobs run, e.g. EU or US.")
    maximum_bytes_billed: int | None = Field(
        None, ge=1, description="A query that would bill more is refused, before it runs."
    )
    credentials_env: str = Field(
        "GOOGLE_APPLICATION_CREDENTIALS",
        description="Environment variable naming a service-account file; Application Default Credentials when unset.",
    )
    timeout: float = Field(300, gt=0, le=21600, description="Seconds to wait for a query.")
    api_endpoint: str | None = Field(None, description="Another API address, e.g. an emulator's.")
    anonymous: bool = Field(False, description="Send no credentials (emulators only).")


# CAST reads a DATETIME (a naive hour) as UTC and leaves a TIMESTAMP as it is.
HOUR_SQL = HourSql(
    micros="UNIX_MICROS(CAST({hour} AS TIMESTAMP))",
    divide="DIV(({a}), {b})",  # `({a})`: the emulator writes DIV as `//`
    finite="NOT IS_INF(CAST({x} AS FLOAT64)) AND NOT IS_NAN(CAST({x} AS FLOAT64))",
    infinite="IS_INF(CAST({x} AS FLOAT64))",
)


def _parameter(name: str, value: Any) -> Any:
    from google.cloud import bigquery

    if isinstance(value, list | tuple):
        kinds = {_scalar_type(v) for v in value} or {"STRING"}
        return bigquery.ArrayQueryParameter(name, kinds.pop() if len(kinds) == 1 else "STRING", list(value))
    return bigquery.ScalarQueryParameter(name, _scalar_type(value), _scalar_value(value))


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "STRING"


def _scalar_value(value: Any) -> Any:
    # Herald's hourly bounds are naive UTC; BigQuery's TIMESTAMP wants the zone said.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@register
class BigQuerySource(Source):
    type_name = "bigquery"
    config_model = BigQueryConfig
    config: BigQueryConfig

    def __init__(self, name: str, config: BigQueryConfig, base_dir: Path) -> None:
        super().__init__(name, config, base_dir)
        self._client: Any = None

    @property
    def hour_sql(self) -> HourSql:
        return HOUR_SQL

    def _connect(self) -> Any:
        if self._client is None:
            from google.api_core.client_options import ClientOptions
            from google.cloud import bigquery

            options = (
                ClientOptions(api_endpoint=self.config.api_endpoint) if self.config.api_endpoint else None
            )
            self._client = bigquery.Client(
                project=self.config.project,
                credentials=self._credentials(),
                location=self.config.location,
                client_options=options,
            )
        return self._client

    def _credentials(self) -> Any:
        import google.auth
        from google.auth.credentials import AnonymousCredentials
        from google.auth.exceptions import DefaultCredentialsError
        from google.oauth2 import service_account

        if self.config.anonymous:
            return AnonymousCredentials()
        path = os.environ.get(self.config.credentials_env)
        try:
            if path:
                return service_account.Credentials.from_service_account_file(path)
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
            return credentials
        except (DefaultCredentialsError, OSError, ValueError) as exc:
            where = (
                f"the file named by {self.config.credentials_env}"
                if path
                else "Application Default Credentials"
            )
            raise SourceError(
                f"source '{self.name}': no usable Google credentials in {where}: {type(exc).__name__}",
                f"set {self.config.credentials_env} to a service-account key file, or run "
                "`gcloud auth application-default login`",
            ) from None

    def _job_config(self, params: dict[str, Any], **extra: Any) -> Any:
        from google.cloud import bigquery

        labels = {k: _label(v) for k, v in self.labels.items()}
        dataset = f"{self.config.project}.{self.config.dataset}" if self.config.dataset else None
        return bigquery.QueryJobConfig(
            query_parameters=[_parameter(n, v) for n, v in params.items()],
            labels=labels,
            maximum_bytes_billed=self.config.maximum_bytes_billed,
            default_dataset=dataset,
            **extra,
        )

    def _run(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        client = self._connect()
        limit = self.config.maximum_bytes_billed
        # A free dry run first: only a SELECT goes on, and an expensive query is refused before it is billed.
        estimate = self._dry_run(sql, params).total_bytes_processed
        if limit is not None and estimate is not None and estimate > limit:
            raise SourceError(
                f"the query would scan {estimate:,} bytes, over maximum_bytes_billed ({limit:,})",
                "narrow the query (filter on the partition column) or raise maximum_bytes_billed",
            )
        try:
            rows = client.query(sql, job_config=self._job_config(params)).result(timeout=self.config.timeout)
            # Plain REST pages, no Storage API: KPI results are aggregates, small enough to page through.
            return pd.DataFrame.from_records(
                [tuple(row) for row in rows], columns=[f.name for f in rows.schema]
            )
        except Exception as exc:
            raise _error(exc) from None

    def _dry_run(self, sql: str, params: dict[str, Any]) -> Any:
        """Plan the query without running it; SourceError unless BigQuery reads it as one SELECT."""
        try:
            job = self._connect().query(
                sql, job_config=self._job_config(params, dry_run=True, use_query_cache=False)
            )
        except Exception as exc:
            raise _error(exc) from None
        kind = job.statement_type
        if kind == "SCRIPT":
            raise several_statements("BigQuery reads the SQL as a script of several statements")
        # BigQuery always names the type; a stand-in server that does not leaves the local split as the guard.
        if kind is not None and kind != "SELECT":
            raise not_a_select(kind)
        return job

    def check(self, sql: str, params: Any) -> SourceCheck:
        sql = self.one_select(sql)
        job = self._dry_run(sql, {n: params[n] for n in parameters_in(sql)})
        columns = [field.name for field in (job.schema or [])]
        return SourceCheck(columns, int(job.total_bytes_processed or 0))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _label(value: str) -> str:
    """BigQuery labels: lower-case letters, digits, - and _, at most 63 characters."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in str(value).lower())[:63]


def _error(exc: Exception) -> SourceError:
    from google.api_core import exceptions as api

    if isinstance(exc, api.GoogleAPICallError):
        reasons = {e.get("reason") for e in (exc.errors or []) if isinstance(e, dict)}
        details = [e.get("message") for e in (exc.errors or []) if isinstance(e, dict) and e.get("message")]
        message = (details[0] if details else getattr(exc, "message", str(exc))).strip().splitlines()[0]
        if "bytesBilledLimitExceeded" in reasons:
            return SourceError(
                f"BigQuery refused the query: {message}", "narrow the query or raise maximum_bytes_billed"
            )
        if isinstance(exc, api.Forbidden | api.Unauthorized):
            return SourceError(
                f"BigQuery denied access: {message}",
                "grant the service account BigQuery Job User and Data Viewer",
            )
        if isinstance(exc, api.NotFound):
            return SourceError(f"BigQuery: {message}", "check the project, dataset and table names")
        return SourceError(f"BigQuery: {message}", "fix the SQL and run `validate --check-sources` again")
    if isinstance(exc, TimeoutError | api.RetryError):
        return SourceError(
            f"BigQuery did not answer in time ({type(exc).__name__})", "raise `timeout` or retry later"
        )
    return SourceError(
        f"cannot reach BigQuery: {type(exc).__name__}: {exc}", "check the network and api_endpoint"
    )
