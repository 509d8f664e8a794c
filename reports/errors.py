"""Herald's one exception tree. `run.py` turns each into one line with its fix."""

from __future__ import annotations

from dataclasses import dataclass


class HeraldError(Exception):
    """A problem the user can fix; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(HeraldError):
    """Bad command-line arguments."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, pinned to the line and column at fault."""

    file: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.message} — {self.hint}" if self.hint else f"{where}: {self.message}"


class ConfigError(HeraldError):
    """The config could not be loaded; carries every issue found, not just the first."""

    exit_code = 2

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column, i.message))
        super().__init__("\n".join(str(i) for i in self.issues))

    def __str__(self) -> str:
        return self.message


class SourceError(HeraldError):
    """A warehouse could not be reached or refused a query."""


class KpiError(HeraldError):
    """A KPI query failed or returned rows of the wrong shape."""

    def __init__(self, kpi: str, message: str, hint: str = "") -> None:
        super().__init__(f"KPI '{kpi}': {message}", hint)
        self.kpi = kpi


class NotReady(HeraldError):
    """The run's as-of date cannot be reported on: it is in the future, or there is no data for it.
    From the command line this is the user's mistake (exit 2); under `serve` the run fails and the
    job's owners are told."""

    exit_code = 2


class JobError(UsageError):
    """A job named on the command line does not exist."""
