"""The Jinja environment: Herald's templates, overridable by name from the config's folder.

HTML is autoescaped; an undefined name is an error naming the template and line, never a blank.
"""

from __future__ import annotations

import base64
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reports.errors import HeraldError
from reports.formatting import (
    clip,
    format_change,
    format_change_pct,
    format_duration,
    format_span,
    format_through,
    format_value,
    standing,
)

if TYPE_CHECKING:
    from reports.render.drawn import Charts

BUILTIN = Path(__file__).resolve().parents[2] / "templates"


class TemplateError(HeraldError):
    """A template could not be loaded or rendered."""


def _when(value: date | datetime | None, pattern: str = "%d %b %Y") -> str:
    if value is None:
        return "—"
    return value.strftime(pattern).lstrip("0")


def _standing(finding: Any) -> str:
    """How an open alert stands on this run: " (new)", " (since 20 Nov)", or nothing."""
    text = standing(finding)
    return f" ({text})" if text and text != "resolved" else ""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def charts(env: jinja2.Environment) -> Charts:
    """The environment's chart cache: every template and renderer sharing `env` shares it."""
    return env.herald_charts  # type: ignore[attr-defined]


def environment(user_dir: Path | None = None) -> jinja2.Environment:
    loaders = [jinja2.FileSystemLoader(str(user_dir))] if user_dir else []
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN)))
    # Sandboxed: a template (Herald's, the user's, or a subject line in config.yaml) reads the
    # report it is given and nothing else: no attributes that lead to Python's internals.
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        value=format_value,
        change=format_change,
        change_pct=format_change_pct,
        duration=format_duration,
        when=_when,
        data_uri=_data_uri,
        through=format_through,
        standing=_standing,
        clip=clip,
        span=lambda period: format_span(period.start, period.end),
    )
    from reports.render.drawn import Charts

    drawn = Charts()
    env.extend(herald_charts=drawn)
    # Pages show charts as SVG in <img>: as quick for WeasyPrint as inline <svg>, the alt text
    # stays, and a browser runs nothing and fetches nothing inside an image.
    env.filters["chart_uri"] = lambda chart: _svg_uri(drawn.svg(chart))
    return env


def _svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def render(env: jinja2.Environment, name: str, **context: Any) -> str:
    """Render `name`, turning any template problem into one error with the file and line."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template {exc.filename or exc.name}, line {exc.lineno}: {exc.message}",
            "fix the template's syntax",
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {exc.name} not found", f"add it to {BUILTIN} or the config's templates folder"
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(
            f"template {_template_line(exc)}: {exc}", "templates may only read the report's own fields"
        ) from None
    except jinja2.UndefinedError as exc:
        where = _template_line(exc)
        raise TemplateError(
            f"template {where}: {exc.message}",
            "check the name for a typo; templates see `report` and its fields",
        ) from None


def _template_line(exc: BaseException) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((".html", ".txt", ".css")):
            return f"{frame.filename}, line {frame.lineno}"
    return "(unknown)"
