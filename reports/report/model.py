"""The report model: built once per (job, as-of date, recipient), then rendered by every format.

It holds numbers, labels and chart specifications, never a query, a template or a drawing. A KPI that could not
be computed appears as such, with the reason, rather than as a blank or a zero.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from reports.findings import Finding
from reports.formatting import format_change, format_change_pct, shows_no_change
from reports.kpis.periods import Grain, Period

# The parts of a report that cost more than its cards and findings. A caller that knows which
# ones its outputs show (see reports/render/outputs.py) asks the builder for only those, and the
# run reads its KPIs only as far back as those need (reports/pipeline/compute.py). "headline" is
# the first trend alone (an email's one chart), which "trends" includes.
SECTIONS = frozenset({"trends", "headline", "movers", "rollups", "daily"})


@dataclass(frozen=True)
class Recipient:
    """Who a report is for; `entities` limits what they see (None: everything)."""

    key: str
    label: str
    email: str | None = None
    slack: str | None = None
    entities: tuple[str, ...] | None = None
    folder: str = ""  # set where two recipients' names would make the same folder

    def contact(self, channel: str) -> str | None:
        """Where this recipient is reached on `channel` (from the entity query's owner columns)."""
        return {"email": self.email, "slack": self.slack}.get(channel)

    @property
    def slug(self) -> str:
        """The recipient's folder and file-name part: from their name, short and safe; from their
        id where the name has no Latin letters or digits (`חנות הספרים` is p0009's)."""
        if self.folder:
            return self.folder
        for text in (self.label, self.key):
            text = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
            found = "-".join(part for part in text.split("-") if part)[:60].strip("-")
            if found:
                return found
        return "recipient"


EVERYONE = Recipient("all", "Everyone")


@dataclass(frozen=True)
class KpiCard:
    kpi: str
    label: str
    unit: str
    higher_is_better: bool
    value: float | None
    previous: float | None
    change: float | None
    change_pct: float | None
    error: str | None = None  # why the value could not be computed
    stale: bool = False  # computed, but from data older than the KPI's freshness limit

    @property
    def direction(self) -> str:
        """Up, down, or flat when the change the card shows rounds away (a rate that moved by
        0.004 pp reads 0.0 pp, and is neither good nor bad news)."""
        if self.change is None or self.change == 0:
            return "flat"
        if self.unit == "percent" or self.change_pct is None:
            shown = format_change(self.change, self.unit)
        else:
            shown = format_change_pct(self.change_pct)
        if shows_no_change(shown):
            return "flat"
        return "up" if self.change > 0 else "down"

    @property
    def tone(self) -> str:
        """`good`, `bad` or `neutral`, from the direction and whether higher is better."""
        if self.direction == "flat":
            return "neutral"
        return "good" if (self.direction == "up") == self.higher_is_better else "bad"


@dataclass(frozen=True)
class Trend:
    kpi: str
    label: str
    unit: str
    periods: list[str]  # labels, oldest first
    values: list[float | None]
    earlier: list[float | None]  # the same number of periods just before, for comparison
    chart: str  # id in Report.charts


@dataclass(frozen=True)
class Mover:
    entity: str
    name: str
    value: float | None
    previous: float | None
    change: float | None
    change_pct: float | None


@dataclass(frozen=True)
class Movers:
    kpi: str
    label: str
    unit: str
    rising: list[Mover]
    falling: list[Mover]
    chart: str | None


@dataclass(frozen=True)
class Freshness:
    kpi: str
    label: str
    newest: datetime | None
    age: timedelta | None
    limit: timedelta | None
    stale: bool

    @property
    def up_to_date(self) -> bool:
        """Data through the end of the as-of day: nothing for a reader to weigh."""
        return not self.stale and self.age is not None and not self.age


@dataclass(frozen=True)
class Definition:
    kpi: str
    label: str
    unit: str
    aggregate: str
    higher_is_better: bool
    source: str
    sql: str
    description: str


@dataclass(frozen=True)
class Chart:
    """What a chart shows, not how it looks: its kind and the series, labels and unit it plots.

    Renderers draw it (reports/render/svg.py, drawn.py), each distinct chart once, so a model stays
    cheap to build and to keep. Its id is derived from its content: the same chart with the same
    numbers has the same id in every recipient's report and every format.
    """

    kind: str  # trend | movers | distribution
    spec: dict[str, Any]  # keyword arguments of the drawing, with None for a missing value
    alt: str
    id: str = field(init=False)

    def __post_init__(self) -> None:
        plotted = {
            k: [_number(v) for v in val] if isinstance(val, list) and k not in _TEXT_LISTS else val
            for k, val in self.spec.items()
        }
        digest = hashlib.sha256(json.dumps([self.kind, plotted], sort_keys=True, default=str).encode())
        object.__setattr__(self, "id", f"{self.kind}-{digest.hexdigest()[:16]}")

    @property
    def title(self) -> str:
        return self.spec["title"]

    @property
    def cid(self) -> str:
        """The Content-ID an email refers to the chart's inline image by."""
        return f"{self.id}@herald"


_TEXT_LISTS = {"labels", "names"}


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Rollup:
    """KPI values by one dimension (plan, region...), current and previous period."""

    dimension: str
    kpis: list[str]
    rows: pd.DataFrame  # index: dimension value; columns: (kpi, "value" | "previous" | "change_pct")


@dataclass
class Report:
    job: str
    role: str
    title: str
    grain: Grain
    period: Period
    previous: Period
    as_of: date
    generated_at: datetime
    timezone: str
    recipient: Recipient
    entity_label: str
    page_size: str = "A4"
    cards: list[KpiCard] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)
    movers: Movers | None = None
    health_chart: str | None = None
    findings: list[Finding] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    rollups: list[Rollup] = field(default_factory=list)
    daily: pd.DataFrame | None = None  # every KPI by entity and day (analyst exports)
    charts: dict[str, Chart] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entity_count: int = 0
    link: str | None = None  # where the archived report can be read (with `archive_url`)
    group_over: int = 10  # more entities than this for one rule: one line with the count in messages
    withheld: bool = False  # data late and the job says `when_late: withhold`: no files go out

    @property
    def period_label(self) -> str:
        return self.period.label(self.grain)

    @property
    def stale(self) -> list[Freshness]:
        return [f for f in self.freshness if f.stale]

    @property
    def data_as_of(self) -> datetime | None:
        """How far the fresh KPIs' data reaches (the oldest of their newest rows); stale ones are flagged apart."""
        fresh = [f.newest for f in self.freshness if f.newest is not None and not f.stale]
        newest = fresh or [f.newest for f in self.freshness if f.newest is not None]
        return min(newest) if newest else None

    @property
    def file_stem(self) -> str:
        stem = f"{self.job}-{self.as_of.isoformat()}"
        return stem if self.recipient is EVERYONE else f"{stem}-{self.recipient.slug}"

    @property
    def not_computed(self) -> list[str]:
        """What readers are told could not be computed, in their words: the KPIs' labels (the
        error itself goes to the job's owners, not to the report's readers)."""
        labels = [c.label for c in self.cards if c.error]
        return labels or (["some alerts"] if self.failures else [])

    @property
    def open_alerts(self) -> list[Finding]:
        """What fires on this run, new and ongoing."""
        return [f for f in self.findings if f.status != "resolved"]

    @property
    def resolved(self) -> list[Finding]:
        """Alerts that stopped firing since the last run."""
        return [f for f in self.findings if f.status == "resolved"]

    def storms(self, findings: list[Finding]) -> dict[str, list[Finding]]:
        """Rules that fired for more entities than `group_over` at once: messages show each as
        one line with the count, and leave the list to the archived report."""
        by_rule: dict[str, list[Finding]] = {}
        for finding in findings:
            if finding.entity:
                by_rule.setdefault(finding.rule, []).append(finding)
        return {rule: items for rule, items in by_rule.items() if len(items) > self.group_over}

    def findings_by_severity(self) -> dict[str, list[Finding]]:
        """Open alerts (new and ongoing), by severity."""
        grouped: dict[str, list[Finding]] = {}
        for finding in (f for f in self.findings if f.status != "resolved"):
            grouped.setdefault(finding.severity, []).append(finding)
        return grouped
