"""Renderers: each turns a finished report model into the bytes of one file format.

Formats are registered by name (`pdf`, `xlsx`, `html`) the same way a new one would be; a
renderer reads only the model and the templates, never a source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import jinja2

from reports.registry import Registry
from reports.report.model import Report


class Renderer(ABC):
    format: ClassVar[str]
    extension: ClassVar[str]
    media_type: ClassVar[str]
    attached: ClassVar[bool] = True  # sent with the email and uploaded to Slack; False: archive only
    needs: ClassVar[frozenset[str]] = frozenset()  # report sections it may show (report.build.SECTIONS)

    def __init__(self, env: jinja2.Environment) -> None:
        self.env = env

    @abstractmethod
    def render(self, report: Report) -> bytes:
        """The file's bytes."""

    def write(self, report: Report, path: Path) -> None:
        """Write the file; formats that can stream override this."""
        path.write_bytes(self.render(report))


RENDERERS: Registry[type[Renderer]] = Registry("format", lambda cls: cls.format)
register = RENDERERS.register  # class decorator: a format config.yaml can name under `formats:`


def renderer(fmt: str, env: jinja2.Environment) -> Renderer:
    return RENDERERS[fmt](env)


def formats() -> list[str]:
    return RENDERERS.names()


import reports.render.html  # noqa: E402
import reports.render.pdf  # noqa: E402
import reports.render.xlsx  # noqa: E402, F401
