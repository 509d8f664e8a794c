"""Config loading: every mistake reported at once, at its line and column, with its fix."""

import json
from pathlib import Path

import pytest

from reports.config.load import load_config, parse_config
from reports.config.reference import BEGIN, END, config_reference
from reports.errors import ConfigError
from tests.conftest import ROOT

VALID = """\
sources:
  demo: {type: duckdb, path: demo.duckdb}
kpis:
  events:
    label: Events
    source: demo
    sql: SELECT 1
    freshness: 2 days
entities:
  project: {source: demo, sql: SELECT 1}
rules:
  - name: quiet
    kpi: events
    when: {below: 1}
    severity: warning
reports:
  daily:
    role: cs
    schedule: {cron: "0 7 * * *", timezone: Europe/London}
    kpis: [events]
"""


def problems(text: str, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=environ or {})
    return [str(issue) for issue in caught.value.issues]


def at(text: str, token: str, nth: int = 1) -> str:
    """`LINE:COL` of the nth occurrence of `token` in `text`; a `|` in it marks the exact spot."""
    before, _, after = token.rpartition("|")
    index = -1
    for _ in range(nth):
        index = text.index(before + after, index + 1)
    index += len(before)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{line}:{column}"


def test_the_valid_config_loads():
    config = parse_config(VALID, environ={})
    assert config.rules[0].when.below == 1
    assert config.reports["daily"].schedule.timezone == "Europe/London"


BROKEN = [
    # (what to replace, with what, token the error points at, message, hint)
    (
        "    sql: SELECT 1",
        "    sqll: SELECT 1",
        "sqll",
        "unknown key 'sqll' in kpis.events",
        "did you mean 'sql'? allowed keys: label, source, sql,",
    ),
    ("reports:", "report:", "report:", "unknown key 'report' in the config", "did you mean 'reports'?"),
    (
        '"0 7 * * *"',
        '"0 25 * * *"',
        '"0 25',
        "reports.daily.schedule.cron: '0 25 * * *' is not a valid cron schedule",
        "use five fields",
    ),
    (
        "Europe/London",
        "Europe/Lundon",
        "Europe/Lundon",
        "reports.daily.schedule.timezone: unknown time zone 'Europe/Lundon'",
        "did you mean 'Europe/London'?",
    ),
    (
        "    kpi: events",
        "    kpi: event",
        "kpi: |event",
        "rules[0].kpi names KPI 'event', which is not defined",
        "did you mean 'events'? defined under kpis: events",
    ),
    (
        "    kpis: [events]",
        "    kpis: [events, sesions]",
        "sesions",
        "reports.daily.kpis[1] names KPI 'sesions', which is not defined",
        "defined under kpis: events",
    ),
    (
        "entities:",
        "  events: {label: E, source: demo, sql: x}\nentities:",
        "events: {",
        "duplicate key 'events'",
        "it is already defined on line 4",
    ),
    (
        "reports:",
        "  - {name: quiet, kpi: events, when: {above: 9}}\nreports:",
        "quiet, kpi",
        "duplicate rule name 'quiet'",
        "the first is on line 12",
    ),
    (
        "path: demo.duckdb",
        'path: "${HERALD_DB}"',
        '"${HERALD_DB}"',
        "environment variable HERALD_DB is not set",
        "export HERALD_DB=... before running Herald",
    ),
    (
        "    kpis: [events]",
        "    kpis: events",
        "kpis: |events",
        "reports.daily.kpis must be a list, not 'events'",
        "fix the value's type",
    ),
    (
        "when: {below: 1}",
        "when: {below: lots}",
        "lots",
        "rules[0].when.below: 'lots' is not a number",
        "or a percentage such as '80%'",
    ),
    (
        "when: {below: 1}",
        "when: {belw: 1}",
        "{belw",
        "rules[0].when: `when` must be a mapping with exactly one of: above, below",
        "write it as `above: ...`",
    ),
    (
        "type: duckdb",
        "type: duckbd",
        "duckbd",
        "unknown source type 'duckbd' in sources.demo",
        "did you mean 'duckdb'? use one of: bigquery, duckdb, sql",
    ),
    (
        "severity: warning",
        "severity: high",
        "high",
        "rules[0].severity: 'high' is not allowed",
        "use one of: warning, critical",
    ),
    ("    label: Events\n", "", "source: demo\n", "kpis.events is missing 'label'", "add `label:` here"),
    (
        "freshness: 2 days",
        "freshness: soon",
        "soon",
        "kpis.events.freshness: 'soon' is not a duration",
        "e.g. '2 days' or '36 hours'",
    ),
    (
        "    severity: warning",
        "    severity: warning\n    for: twice",
        "twice",
        "rules[0].for: 'twice' is not a number of runs",
        "e.g. '2 runs'",
    ),
    ("    freshness: 2 days\n", "", "{below", "", ""),  # placeholder replaced below: stale needs freshness
    (
        "role: cs",
        "role: ceo",
        "ceo",
        "reports.daily.role: 'ceo' is not allowed",
        "use one of: executive, cs, analyst",
    ),
    (
        "  demo: {",
        "  Demo-DB: {",
        "Demo-DB",
        "sources: 'Demo-DB' is not a valid name",
        "use lower-case letters, digits and underscores",
    ),
]
BROKEN[17] = (
    "when: {below: 1}\n    severity: warning\n    freshness: 2 days\n",
    "when: {stale: true}\n    severity: warning\n",
    "{stale",
    "rule 'quiet' checks staleness but KPI 'events' has no freshness",
    "add `freshness: 1 day` to kpis.events",
)


@pytest.mark.parametrize(("old", "new", "token", "message", "hint"), BROKEN, ids=[b[3][:40] for b in BROKEN])
def test_each_mistake_names_its_line_column_and_fix(old, new, token, message, hint):
    assert old in VALID or "freshness" in old
    text = (
        VALID.replace(old, new)
        if old in VALID
        else (VALID.replace("    freshness: 2 days\n", "").replace("when: {below: 1}", "when: {stale: true}"))
    )
    lines = problems(text)
    expected_prefix = f"config.yaml:{at(text, token)}: {message}"
    matching = [line for line in lines if line.startswith(expected_prefix)]
    assert matching, f"expected {expected_prefix!r} in {lines}"
    assert hint in matching[0].split(" — ", 1)[1]


def test_owner_deliveries_need_a_scope():
    text = VALID + "    deliver:\n      - slack: {to: owner}\n"
    (line,) = problems(text)
    assert line == (
        f"config.yaml:{at(text, '- |slack')}: `to: owner` sends each owner their own report, "
        "but the job has no `scope` — add `scope: owner` to reports.daily"
    )


def test_not_yaml_points_at_the_line():
    text = VALID.replace("    source: demo\n", "    source: demo\n  \tbad: [\n")
    (line,) = problems(text)
    assert line.startswith("config.yaml:7:") and "not valid YAML" in line


def test_every_error_is_reported_at_once():
    text = (
        VALID.replace("kpi: events", "kpi: event")
        .replace("Europe/London", "Mars/Base")
        .replace("severity: warning", "severity: high")
    )
    lines = problems(text)
    assert len(lines) == 3
    assert [line.split(":")[1] for line in lines] == sorted(line.split(":")[1] for line in lines)


def test_environment_interpolation_and_defaults():
    text = VALID.replace("path: demo.duckdb", 'path: "${DB_DIR}/demo.duckdb"').replace(
        "label: Events", 'label: "${EVENTS_LABEL:-Events collected}"'
    )
    config = parse_config(text, environ={"DB_DIR": "/srv/herald"})
    assert str(config.sources["demo"].path) == "/srv/herald/demo.duckdb"
    assert config.kpis["events"].label == "Events collected"


def test_secrets_from_the_environment_never_appear_in_errors():
    text = VALID.replace("path: demo.duckdb", 'path: "${SECRET}"').replace("role: cs", "role: x")
    lines = problems(text, environ={"SECRET": "hunter2-very-secret"})
    assert lines and not any("hunter2" in line for line in lines)


def test_the_repository_config_is_valid():
    config = load_config(ROOT / "config.yaml", environ={})
    assert set(config.reports) == {"executive_weekly", "cs_daily_alerts", "analyst_monthly", "project_health"}


def test_validate_command_exit_codes(herald, tmp_path: Path):
    good = tmp_path / "config.yaml"
    good.write_text(VALID)
    result = herald("validate", "--config", good)
    assert result.code == 0 and "OK" in result.out
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("kpi: events", "kpi: event").replace("role: cs", "role: x"))
    result = herald("validate", "--config", bad)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 2
    assert all(line.startswith(f"{bad}:") for line in result.err.strip().splitlines())
    assert "Traceback" not in result.err
    missing = herald("validate", "--config", tmp_path / "nope.yaml")
    assert missing.code == 2 and "cannot read the config" in missing.err


def test_schema_is_json_schema_covering_every_section(herald):
    result = herald("schema")
    schema = json.loads(result.out)
    assert result.code == 0
    assert {"sources", "kpis", "rules", "reports", "entities", "timezone"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_readme_config_reference_matches_the_models():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    assert readme[start:end].strip() == config_reference().strip(), (
        "README's config reference is out of date: paste `python run.py schema --markdown` between the markers"
    )
