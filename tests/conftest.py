"""Shared fixtures: the demo warehouse built once per session, and a CLI runner."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import run as cli
from reports import demo
from reports.config.models import KpiConfig
from reports.kpis.frames import KpiData
from reports.kpis.periods import Period

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse at its default size and seed, as `make run` builds it."""
    path = tmp_path_factory.mktemp("warehouse") / "demo.duckdb"
    demo.build(path)
    return path


@pytest.fixture
def demo_config(tmp_path: Path, demo_db: Path) -> Path:
    """The repository's config.yaml in a folder whose data/demo.duckdb is the session's warehouse."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo.duckdb").symlink_to(demo_db)
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path / "config.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def herald(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `python run.py ...` in-process, in a scratch folder, and capture what it prints."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def kpi_data(
    rows: list[tuple],
    aggregate: str = "sum",
    unit: str = "count",
    freshness: str | None = None,
    newest: object = None,
) -> KpiData:
    """A KPI built by hand: rows of (entity, day, value) or (entity, day, numerator, denominator)."""
    columns = (
        ["entity", "day", "numerator", "denominator"] if aggregate == "ratio" else ["entity", "day", "value"]
    )
    frame = pd.DataFrame(rows, columns=columns)
    frame["day"] = pd.to_datetime(frame["day"])
    for column in columns[2:]:
        frame[column] = frame[column].astype(float)
    config = KpiConfig(
        label="Events", source="demo", sql="SELECT 1", aggregate=aggregate, unit=unit, freshness=freshness
    )
    days = frame["day"]
    window = (
        Period(days.min().date(), days.max().date())
        if len(frame)
        else Period(date(2026, 1, 1), date(2026, 1, 1))
    )
    return KpiData("events", config, frame, newest, window)


NOW = datetime(2026, 11, 23, 7, 0, tzinfo=ZoneInfo("Europe/London"))
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/ from the current output"
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare text with tests/golden/NAME; `pytest --update-golden` rewrites the files instead."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no golden file {path}: run `pytest --update-golden` and review the diff"
        assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"

    return check


def job_run(config_path: Path, job: str, as_of: date = date(2026, 11, 22)):
    """A finished job run on the demo warehouse, and the config it ran with."""
    from reports.config.load import load_config
    from reports.pipeline.compute import compute_job
    from reports.sources.pool import Sources

    config = load_config(config_path)
    sources = Sources(config)
    try:
        return config, compute_job(config, job, as_of, sources)
    finally:
        sources.close()


def demo_folder(folder: Path, demo_db: Path, edit=None) -> Path:
    """config.yaml (edited by `edit(data)` if given) beside a link to the session's warehouse."""
    import yaml

    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "demo.duckdb").symlink_to(demo_db)
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    if edit:
        edit(data)
    (folder / "config.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return folder / "config.yaml"


def execute_job(config_path: Path, job: str, out: Path, as_of: date = date(2026, 11, 22)):
    """Run, render and deliver one job as `run.py run` does; returns the outcome and the store."""
    from reports.config.load import load_config
    from reports.pipeline.execute import execute
    from reports.render.templates import environment
    from reports.sources.pool import Sources
    from reports.store import Store

    config = load_config(config_path)
    sources, store = Sources(config), Store(config.path(config.store))
    try:
        outcome = execute(config, job, as_of, out, sources=sources, env=environment(), store=store)
    finally:
        sources.close()
    return outcome, store


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The check that every registered part was exercised (tests/test_parts.py) runs last."""
    items.sort(key=lambda item: item.fspath.basename == "test_parts.py")
