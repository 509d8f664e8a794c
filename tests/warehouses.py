"""Real warehouses for the tests: the BigQuery emulator and a PostgreSQL server, both on loopback,
each loaded with the same small demo warehouse as DuckDB."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pandas as pd

from tests.servers import free_port

PROJECT, DATASET = "herald-test", "demo"
TABLES = ("cs_owners", "projects", "daily_project_stats", "crm_syncs", "background_jobs", "hourly_traffic")
BQ_TYPES = {"object": "STRING", "int64": "INT64", "float64": "FLOAT64", "bool": "BOOL"}


def _frames(duckdb_path: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        return {table: con.execute(f"SELECT * FROM {table}").df() for table in TABLES}


def _bq_type(column: str, series: pd.Series) -> str:
    if column == "hour_utc":
        return "TIMESTAMP"
    if column in ("day", "created_at"):
        return "DATE"
    return BQ_TYPES.get(str(series.dtype), "STRING")


@contextmanager
def bigquery_emulator(log: Path) -> Iterator[str]:
    """`bqemulator start` on free ports; yields its REST address."""
    program = os.environ.get("HERALD_BQEMULATOR") or shutil.which("bqemulator") or ".venv-bq/bin/bqemulator"
    if not Path(program).exists():
        raise RuntimeError(f"the BigQuery emulator is not installed at {program}: run `make test`")
    rest, grpc = free_port(), free_port()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [
                program,
                "start",
                "--rest-port",
                str(rest),
                "--grpc-port",
                str(grpc),
                "--project",
                PROJECT,
                "--log-level",
                "warning",
            ],
            stdout=output,
            stderr=output,
        )
    url = f"http://127.0.0.1:{rest}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with suppress(OSError):
                urllib.request.urlopen(f"{url}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the BigQuery emulator did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


def load_bigquery(url: str, duckdb_path: Path) -> None:
    """Copy the demo tables into the emulator through the real client (streaming inserts)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=url)
    )
    client.create_dataset(DATASET, exists_ok=True)
    for name, frame in _frames(duckdb_path).items():
        schema = [bigquery.SchemaField(c, _bq_type(c, frame[c])) for c in frame.columns]
        table = client.create_table(
            bigquery.Table(f"{PROJECT}.{DATASET}.{name}", schema=schema), exists_ok=True
        )
        for column in ("day", "created_at"):
            if column in frame:
                frame[column] = frame[column].dt.date
        if "hour_utc" in frame:
            frame["hour_utc"] = frame["hour_utc"].dt.tz_localize("UTC")
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for start in range(0, len(records), 10_000):
            errors = client.insert_rows(table, records[start : start + 10_000])
            assert not errors, errors[:3]
    client.close()


def _postgres_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("PostgreSQL is not installed: run `make test`, which installs it")
    return Path(candidates[-1]).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port; yields a SQLAlchemy URL."""
    binaries, port = _postgres_bin(), free_port()
    # Outside pytest's private temp folder, which the postgres user could not enter.
    folder = Path(tempfile.mkdtemp(prefix="herald-pg-"))
    data, sockets = folder / "pgdata", folder / "sockets"
    sockets.mkdir()
    # PostgreSQL refuses to run as root; as root, run it as the postgres user.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True)  # noqa: E731
    run(str(binaries / "initdb"), "-D", str(data), "-U", "herald", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(folder / "postgres.log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg://herald@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


def load_postgres(url: str, duckdb_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        for name, frame in _frames(duckdb_path).items():
            for column in ("day", "created_at"):
                if column in frame:
                    frame[column] = frame[column].dt.date  # DATE columns, as in the other warehouses
            frame.to_sql(name, connection, index=False, if_exists="replace", chunksize=10_000, method="multi")
    engine.dispose()


@contextmanager
def bigquery_holding(duckdb_path: Path, log: Path) -> Iterator[str]:
    """The BigQuery emulator, started and loaded with a copy of the DuckDB warehouse."""
    with bigquery_emulator(log) as url:
        load_bigquery(url, duckdb_path)
        yield url


@contextmanager
def postgres_holding(duckdb_path: Path) -> Iterator[str]:
    """A PostgreSQL server, started and loaded with a copy of the DuckDB warehouse."""
    with postgres_server() as url:
        load_postgres(url, duckdb_path)
        yield url
