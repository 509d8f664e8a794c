"""Load config.yaml into typed models, gathering every problem as `file:line:col: message — hint`."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reports.config.base import echoable, quoted
from reports.config.models import HeraldConfig
from reports.config.yamlfile import Located
from reports.config.yamlfile import load as load_yaml
from reports.config.yamlfile import parse as parse_yaml
from reports.errors import ConfigError, ConfigIssue
from reports.rules import CONDITIONS

_EXPECTED = {
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "time_type": "a time such as '09:00'",
    "time_parsing": "a time such as '09:00'",
    "path_type": "a path",
}
_BOUNDS = {
    "less_than_equal": ("le", "at most {}", "use a smaller number"),
    "less_than": ("lt", "less than {}", "use a smaller number"),
    "greater_than_equal": ("ge", "at least {}", "use a larger number"),
    "greater_than": ("gt", "more than {}", "use a larger number"),
}
_KINDS = {dict: "a mapping", list: "a list", type(None): "empty"}
_QUOTED = re.compile(r"(?<!\w)'([^']*)'(?!\w)")


def load_config(path: Path, environ: dict[str, str] | None = None) -> HeraldConfig:
    """Read and check `path`; raise ConfigError listing every problem at once."""
    return validate(load_yaml(path, environ), path.resolve().parent)


def parse_config(
    text: str, file: str = "config.yaml", base_dir: Path = Path(), environ: dict[str, str] | None = None
) -> HeraldConfig:
    return validate(parse_yaml(text, file, environ), base_dir)


def validate(located: Located, base_dir: Path) -> HeraldConfig:
    issues = list(located.issues)
    if not isinstance(located.data, dict):
        issues.append(
            located.issue(
                (),
                "the config must be a mapping of sections",
                "start with `sources:`, `kpis:`, `rules:` and `reports:`",
            )
        )
        raise ConfigError(issues)
    config = None
    try:
        config = HeraldConfig.model_validate(located.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if _resolve(located, error["loc"])[0] not in located.broken:  # already explained
                issues.extend(_issues_from(error, located))
    issues.extend(check_references(located))
    if config is not None and config.templates is not None:
        issues.extend(_check_templates(located, config.templates, base_dir))
    if issues or config is None:
        raise ConfigError(list(dict.fromkeys(_without_secrets(issues, located))))
    config._base_dir = base_dir
    return config


def _check_templates(located: Located, written: Path, base_dir: Path) -> list[ConfigIssue]:
    folder = base_dir / written  # an absolute `written` stays as it is
    try:
        exists, is_dir = folder.exists(), folder.is_dir()
    except (OSError, ValueError):
        exists = is_dir = False
    if is_dir:
        return []
    shown = quoted(str(written)) or "the folder"
    return [
        located.issue(
            ("templates",),
            f"templates: {shown} is a file, not a folder" if exists else f"templates: {shown} does not exist",
            "name a folder of templates (relative to the config's folder), or remove `templates:`",
        )
    ]


def _without_secrets(issues: list[ConfigIssue], located: Located) -> list[ConfigIssue]:
    """The last guard before printing: quoted text that may be a secret becomes 'the value', and
    values taken from secret-looking environment variables vanish, whoever wrote the message."""

    def safe(text: str) -> bool:
        return echoable(text) and not any(secret in text for secret in located.secrets if secret)

    def scrub(text: str) -> str:
        text = _QUOTED.sub(lambda m: m[0] if safe(m[1]) else "the value", text)
        for secret in located.secrets:
            text = text.replace(secret, "…") if secret else text
        return " ".join(text.split("\n"))

    return [ConfigIssue(i.file, i.line, i.column, scrub(i.message), scrub(i.hint)) for i in issues]


def _where(path: tuple) -> str:
    text = ""
    for part in path:
        name = part if isinstance(part, int) or echoable(part) else "<…>"
        text += f"[{name}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text or "the config"


def _resolve(located: Located, loc: tuple) -> tuple[tuple, bool]:
    """Map pydantic's location (with union tags and validator names) onto the YAML's own path."""
    path: tuple = ()
    for part in loc:
        if part == "[key]":
            return path, True
        if (*path, part) in located.values:
            path = (*path, part)
    return path, False


def _closest(word: Any, choices: list[str]) -> str:
    if not isinstance(word, str) or not echoable(word):
        return ""
    close = difflib.get_close_matches(word, [c for c in choices if echoable(c)], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _not(value: Any) -> str:
    """How an error names a wrong value: `, not 'x'`, `, not a list`, or nothing if it may be secret."""
    kind = _KINDS.get(type(value))
    if kind == "empty":
        return ", but it is empty"
    shown = kind or quoted(value)
    return f", not {shown}" if shown else ""


def _issues_from(error: dict[str, Any], located: Located) -> list[ConfigIssue]:
    kind, ctx = error["type"], error.get("ctx", {})
    path, on_key = _resolve(located, error["loc"])
    where = _where(path)
    if kind == "unknown_keys":
        allowed = ", ".join(ctx["allowed"])
        return [
            located.issue(
                (*path, key),
                f"unknown key {quoted(key) or '(not shown)'} in {where}",
                f"{_closest(key, ctx['allowed'])}allowed keys: {allowed}",
                key=True,
            )
            for key in ctx["unknown"]
        ]
    if kind == "missing":
        field = error["loc"][-1]
        return [located.issue(path, f"{where} is missing '{field}'", f"add `{field}:` here")]
    if kind == "herald":
        where = _where(path[:-1]) if on_key else where  # a bad name speaks of its section
        return [located.issue(path, f"{where}: {error['msg']}", ctx.get("hint", ""), key=on_key)]
    if kind == "union_tag_invalid":
        tags = ctx["expected_tags"].replace("'", "")
        return [
            located.issue(
                (*path, "type"),
                f"unknown source type {quoted(ctx['tag']) or '(not shown)'} in {where}",
                f"{_closest(ctx['tag'], tags.split(', '))}use one of: {tags}",
            )
        ]
    if kind == "union_tag_not_found":
        return [
            located.issue(
                path,
                f"{where} has no `{ctx['discriminator'].strip(chr(39))}`",
                "add `type: duckdb` (or another source type)",
            )
        ]
    if kind == "literal_error":
        choices = [c.strip(" '") for c in ctx["expected"].replace(" or ", ", ").split(",")]
        value = error.get("input")
        return [
            located.issue(
                path,
                f"{where}: {quoted(value) or 'the value'} is not allowed",
                f"{_closest(value, choices)}use one of: {', '.join(choices)}",
            )
        ]
    if kind in _EXPECTED:
        shown = _not(error.get("input"))
        return [
            located.issue(
                path, f"{where} must be {_EXPECTED[kind]}{shown}", "fix the value's type", key=on_key
            )
        ]
    if kind in _BOUNDS:
        limit, words, hint = _BOUNDS[kind]
        shown = _not(error.get("input"))
        return [located.issue(path, f"{where} must be {words.format(quoted(ctx[limit]))}{shown}", hint)]
    if kind == "finite_number":
        return [
            located.issue(
                path,
                f"{where} must be a finite number{_not(error.get('input'))}",
                "infinity and NaN are not allowed; write a number such as 60",
            )
        ]
    return [located.issue(path, f"{where}: {error['msg']}", "", key=on_key)]


def check_references(located: Located) -> list[ConfigIssue]:
    """Names that must refer to something defined elsewhere in the file."""
    data = located.data
    issues: list[ConfigIssue] = []

    def section(name: str) -> dict:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    sources, entities, kpis = section("sources"), section("entities"), section("kpis")
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []

    def refer(path: tuple, value: Any, defined: dict | list, what: str, section_name: str) -> None:
        names = list(defined)
        if isinstance(value, str) and value not in names:
            listed = ", ".join(n for n in names if echoable(n)) or "none yet"
            issues.append(
                located.issue(
                    path,
                    f"{_where(path)} names {what} '{value}', which is not defined",
                    f"{_closest(value, names)}defined under {section_name}: {listed}",
                )
            )

    for name, entity in entities.items():
        if isinstance(entity, dict):
            refer(("entities", name, "source"), entity.get("source"), sources, "source", "sources")
    for name, kpi in kpis.items():
        if not isinstance(kpi, dict):
            continue
        refer(("kpis", name, "source"), kpi.get("source"), sources, "source", "sources")
        if entities or "entity" in kpi:
            entity = kpi.get("entity", "project")
            path = ("kpis", name, "entity") if "entity" in kpi else ("kpis", name)
            refer(path, entity, entities, "entity kind", "entities")
    rule_names: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        refer(("rules", index, "kpi"), rule.get("kpi"), kpis, "KPI", "kpis")
        name = rule.get("name")
        if isinstance(name, str) and name in rule_names:
            first = located.position(("rules", rule_names[name], "name"))[0]
            issues.append(
                located.issue(
                    ("rules", index, "name"),
                    f"duplicate rule name '{name}'",
                    f"rule names must be unique; the first is on line {first}",
                )
            )
        elif isinstance(name, str):
            rule_names[name] = index
        when = rule.get("when")
        kpi = kpis.get(rule["kpi"]) if isinstance(rule.get("kpi"), str) else None
        judges = isinstance(when, dict) and any(
            k in CONDITIONS and CONDITIONS[k].judges_freshness for k in when
        )
        if judges and isinstance(kpi, dict) and "freshness" not in kpi:
            issues.append(
                located.issue(
                    ("rules", index, "when"),
                    f"rule '{name}' checks staleness but KPI '{rule['kpi']}' has no freshness",
                    f"add `freshness: 1 day` to kpis.{rule['kpi']}",
                )
            )
    for job, report in section("reports").items():
        if not isinstance(report, dict):
            continue
        for index, entry in enumerate(
            report.get("deliver") if isinstance(report.get("deliver"), list) else []
        ):
            target = next(iter(entry.values()), None) if isinstance(entry, dict) and len(entry) == 1 else None
            if isinstance(target, dict) and target.get("to") == "owner" and not report.get("scope"):
                issues.append(
                    located.issue(
                        ("reports", job, "deliver", index),
                        "`to: owner` sends each owner their own report, but the job has no `scope`",
                        f"add `scope: owner` to reports.{job}",
                    )
                )
        for key, defined, what in (("kpis", kpis, "KPI"), ("rules", rule_names, "rule")):
            names = report.get(key)
            for index, value in enumerate(names if isinstance(names, list) else []):
                refer(("reports", job, key, index), value, defined, what, key)
    return issues
