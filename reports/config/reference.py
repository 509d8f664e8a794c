"""The config reference in Markdown, generated from the models so the README cannot drift."""

from __future__ import annotations

import sys
import types
import typing
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from notifiers import notifier_types
from reports.config.models import (
    ArchiveConfig,
    BusinessHours,
    CeleryConfig,
    DeliveryPolicy,
    EntityConfig,
    HeraldConfig,
    KpiConfig,
    OwnerColumns,
    ReportConfig,
    RuleConfig,
    Schedule,
    WebConfig,
)
from reports.config.types import WEEKDAYS, _run_count
from reports.formatting import format_duration
from reports.rules import conditions
from reports.sources import source_types

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        base = args[0]
        return _type(base)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type(a) for a in args if a is not type(None)))
    if origin in (list, tuple):
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"mapping of name to {_type(args[1])}"
    if annotation is timedelta:
        return "duration"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value in (None, "", [], {}) or value is PydanticUndefined:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, time):
        return f"`{value:%H:%M}`"
    if isinstance(value, list) and len(value) == 7 and set(value) == set(WEEKDAYS):
        return "every day"
    return f"`{value}`"


def _section(title: str, model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    lines = [f"### `{title}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        key = field.alias or name
        kind = (
            "runs"
            if any(getattr(m, "func", None) is _run_count for m in field.metadata)
            else _type(field.annotation)
        )
        lines.append(f"| `{key}` | {kind} | {_default(field)} | {field.description or ''} |")
    return [*lines, ""]


def config_reference() -> str:
    lines = [
        "## Config reference",
        "",
        "Generated from Herald's config models (`python run.py schema --markdown`); "
        "a test keeps this section equal to that output.",
        "",
    ]
    lines += _section("(top level)", HeraldConfig)
    for name, cls in source_types().items():
        lines += _section(f"sources.<name> (type: {name})", cls.config_model)
    lines += _section("entities.<kind>", EntityConfig)
    lines += _section("entities.<kind>.owner", OwnerColumns)
    lines += _section("kpis.<name>", KpiConfig)
    lines += _section("kpis.<name>.business_hours", BusinessHours)
    lines += _section("rules[]", RuleConfig)
    seen: set[type] = set()
    registered = conditions()
    for kind, cls in registered.items():
        if cls in seen:
            continue
        seen.add(cls)
        kinds = [k for k, c in registered.items() if c is cls]
        lines += [f"#### `when: {{{' | '.join(kinds)}: ...}}`", "", (cls.__doc__ or "").strip(), ""]
        spec = cls.model_fields[kind].annotation
        if isinstance(spec, type) and issubclass(spec, BaseModel):
            lines += _section(f"when.{kind}", spec)
    lines += _section("reports.<job>", ReportConfig)
    lines += _section("reports.<job>.schedule", Schedule)
    for channel, notifier in notifier_types().items():
        target = notifier.delivery.model_fields[channel].annotation
        lines += _section(f"reports.<job>.deliver[].{channel}", target)
    for channel, notifier in notifier_types().items():
        if notifier.settings is not None:
            lines += _section(f"channels.{channel}", notifier.settings)
    lines += _section("delivery", DeliveryPolicy)
    lines += _section("celery", CeleryConfig)
    lines += _section("web", WebConfig)
    lines += _section("archive", ArchiveConfig)
    return "\n".join(lines).rstrip() + "\n"


def update_readme(path: Path) -> None:
    """Replace the README's reference section with the models' current one (`make docs`)."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + config_reference() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    update_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
