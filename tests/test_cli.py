"""The command line follows the conventions its users expect."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from reports.config.models import HeraldConfig
from tests.conftest import ROOT


def test_version_and_the_console_script(herald):
    result = herald("--version")
    assert (
        result.code == 0 and result.out.startswith("herald ") and result.out.strip().split()[1][0].isdigit()
    )
    script = ROOT / ".venv" / "bin" / "herald"
    if script.exists():  # installed by `make install` from [project.scripts]
        done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout == result.out


@pytest.mark.parametrize("before", [True, False])
def test_global_options_go_before_or_after_the_command(herald, demo_config, before):
    args = (
        ["--config", str(demo_config), "validate"] if before else ["validate", "--config", str(demo_config)]
    )
    result = herald(*args)
    assert result.code == 0 and result.out.startswith(f"{demo_config}: OK — 1 source, ")


def test_a_job_and_all_at_once_is_said_plainly(herald, demo_config):
    result = herald("run", "cs_daily_alerts", "--all", "--config", demo_config)
    assert result.code == 2
    assert "both a job (cs_daily_alerts) and --all were given" in result.err


def test_output_to_a_closed_pipe_is_not_an_error(demo_config):
    command = [sys.executable, str(ROOT / "run.py"), "list", "--json", "--config", str(demo_config)]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer.stdout.read(1)
    writer.stdout.close()  # the reader goes away, as `| head -c1` would
    assert writer.wait(30) in (0, 141)
    assert b"internal error" not in writer.stderr.read()


def test_list_as_json(herald, demo_config):
    jobs = json.loads(herald("list", "--json", "--config", demo_config).out)
    assert [j["job"] for j in jobs] == [
        "executive_weekly",
        "cs_daily_alerts",
        "analyst_monthly",
        "project_health",
    ]
    assert all({"schedule", "formats", "recipients"} <= j.keys() for j in jobs)


@pytest.mark.parametrize("who", ["amara.okafor", "@amara.okafor", "Amara Okafor", "amara.okafor@example.com"])
def test_preview_finds_a_recipient_however_they_are_named(herald, demo_config, who):
    result = herald(
        "preview", "cs_daily_alerts", "--as-of", "2026-11-22", "--recipient", who, "--config", demo_config
    )
    assert result.code == 0, result.err
    assert "for Amara Okafor: 1 finding" in result.out and "Nimbus Paper" not in result.out


def test_preview_for_a_fixed_recipient_shows_what_they_get(herald, demo_config):
    result = herald(
        "preview",
        "executive_weekly",
        "--as-of",
        "2026-11-22",
        "--recipient",
        "ceo@example.com",
        "--config",
        demo_config,
    )
    assert result.code == 0, result.err
    assert "crm_sync_failing" in result.out


def test_the_json_schema_accepts_the_shipped_config():
    schema = HeraldConfig.model_json_schema(by_alias=True)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    jsonschema.validate(config, schema)
    wrong = json.loads(json.dumps(config))
    wrong["rules"][0]["when"] = {"below": "lots"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)
