"""Typed models of config.yaml. Loading and error reporting live in `reports.config.load`."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, overload
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, PrivateAttr, WithJsonSchema, create_model, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from notifiers import delivery_type, notifier_types
from reports.config.base import HeraldModel, fail
from reports.config.types import (
    PERCENT_JSON_SCHEMA,
    WEEKDAYS,
    CronString,
    Duration,
    EveryPhrase,
    Name,
    RunCount,
    TimeOfDay,
    TimeZoneName,
    Weekday,
)
from reports.errors import KpiError
from reports.kpis.periods import Grain
from reports.render import formats
from reports.rules import condition_type
from reports.rules.threshold import Number
from reports.scheduler.timing import Trigger, trigger
from reports.sources import source_types


def _source_config_type() -> Any:
    from typing import Union

    models = tuple(cls.config_model for cls in source_types().values())
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 — from the registry


def _format_type() -> Any:
    """One of the registered renderers' formats, e.g. pdf, xlsx, html."""
    return Literal[tuple(formats())]  # type: ignore[valid-type]


def _owner_address(value: Any) -> str:
    text = str(value)
    if not any(cls.accepts(text) for cls in notifier_types().values()):
        raise fail(
            f"'{text}' is not an address Herald can reach",
            "write an email address (data-team@example.com) or a Slack #channel or @handle",
        )
    return text


OwnerAddress = Annotated[str, BeforeValidator(_owner_address), WithJsonSchema({"type": "string"})]


def _web_address(value: Any) -> str:
    """An http(s) address without a user or password in it (it ends up in every email)."""
    text = value if isinstance(value, str) else ""
    try:
        url = urlsplit(text)
        host, credentials = url.hostname, url.username is not None or url.password is not None
    except ValueError:
        host, credentials = None, False
    if not (text.startswith(("http://", "https://")) and host and text.isprintable() and " " not in text):
        raise fail(
            "only http:// and https:// addresses are allowed", "write e.g. https://reports.example.com/herald"
        )
    if credentials:
        raise fail(
            "the address must not hold a user name or password",
            "publish the archive at a plain https:// address",
        )
    return text


WebAddress = Annotated[
    str, BeforeValidator(_web_address), WithJsonSchema({"type": "string", "format": "uri"})
]


def _store_location(value: Any) -> Path | str:
    """`store:`: a SQLite file, or a PostgreSQL address. The address may hold a password, so
    errors never quote it."""
    if isinstance(value, Path) or (isinstance(value, str) and value.strip() and "://" not in value):
        return Path(value)
    text = value if isinstance(value, str) else ""
    try:
        url = urlsplit(text)
        scheme, host, database = url.scheme, url.hostname, url.path.strip("/")
        port_ok = url.port is None or url.port > 0
    except ValueError:  # a port that is not a number
        scheme, host, database, port_ok = "", None, "", False
    if not (
        scheme in ("postgresql", "postgres", "postgresql+psycopg")
        and host
        and database
        and port_ok
        and text.isprintable()
        and " " not in text
    ):
        raise fail(
            "the store is a file path or a postgresql:// address (with a host and a database)",
            "write e.g. data/herald.sqlite, or postgresql://herald:${PG_PASSWORD}@db.internal:5432/herald",
        )
    return text


StoreLocation = Annotated[
    Path | str,
    BeforeValidator(_store_location),
    WithJsonSchema(
        {
            "type": "string",
            "examples": ["data/herald.sqlite", "postgresql://herald:${PG_PASSWORD}@db:5432/herald"],
        }
    ),
]


class BusinessHours(HeraldModel):
    start: TimeOfDay = Field(time(9), description="Local time the business day starts.")
    end: TimeOfDay = Field(time(18), description="Local time it ends (exclusive).")
    days: list[Weekday] = Field(list(WEEKDAYS[:5]), description="Business days.")

    def weekday_numbers(self) -> list[int]:
        return [WEEKDAYS.index(day) for day in self.days]

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if self.end <= self.start:
            raise fail("business hours end before they start", "write start: '09:00', end: '18:00'")
        return self


class KpiConfig(HeraldModel):
    label: str = Field(description="The KPI's name as readers see it.")
    source: str = Field(description="The source (under `sources:`) its SQL runs on.")
    sql: str | dict[str, str] = Field(
        description="Returns entity, day (or hour) and value, or numerator and denominator for a "
        "ratio. Use @start, @end, @as_of, @entities. A mapping gives SQL per source type."
    )
    entity: str = Field("project", description="The entity kind (under `entities:`) its rows are about.")
    grain: Literal["day", "hour"] = Field("day", description="What one row covers.")
    aggregate: Literal["sum", "mean", "last", "max", "ratio"] = Field(
        "sum", description="How days fold into a period; `ratio` pools numerator and denominator."
    )
    unit: Literal["count", "percent", "seconds", "currency"] = Field(
        "count", description="How values are shown; `percent` values are fractions (0.8 is 80%)."
    )
    higher_is_better: bool = Field(True, description="Whether a rise is good news.")
    freshness: Duration | None = Field(None, description="How old the newest row may be, e.g. '1 day'.")
    business_hours: BusinessHours | None = Field(None, description="Hourly KPIs: count only these hours.")
    description: str = Field("", description="What the KPI means, for the Definitions sheet.")

    def sql_for(self, dialect: str, name: str = "") -> str:
        """The SQL for a source's dialect: the one string, or the mapping's entry for it."""
        if isinstance(self.sql, str):
            return self.sql
        if dialect not in self.sql:
            raise KpiError(
                name,
                f"no SQL for {dialect} (it has {', '.join(self.sql)})",
                f"add `{dialect}:` under the KPI's `sql:`",
            )
        return self.sql[dialect]

    @model_validator(mode="after")
    def _hours_need_hourly(self) -> KpiConfig:
        if self.business_hours is not None and self.grain != "hour":
            raise fail("business_hours needs hourly rows", "set grain: hour, or remove business_hours")
        return self


class OwnerColumns(HeraldModel):
    name: str = Field("owner", description="Column with the owner's name.")
    email: str | None = Field("owner_email", description="Column with the owner's email address.")
    slack: str | None = Field("owner_slack", description="Column with the owner's Slack handle or ID.")


class EntityConfig(HeraldModel):
    source: str = Field(description="The source its SQL runs on.")
    sql: str = Field(description="One row per entity: `entity`, `name`, and dimension columns.")
    label: str = Field("Entity", description="What one entity is called, e.g. Project.")
    dimensions: list[str] = Field(default_factory=list, description="Columns reports roll up by.")
    owner: OwnerColumns = Field(
        default_factory=OwnerColumns, description="Columns naming each entity's owner."
    )


class RuleConfig(HeraldModel):
    name: Name = Field(description="Unique rule name, shown on every finding.")
    kpi: str = Field(description="The KPI it reads.")
    when: condition_type() = Field(description="The condition, e.g. `{below: 1}` or `{no_data: {}}`.")  # type: ignore[valid-type]
    for_runs: RunCount = Field(
        1, alias="for", description="Runs in a row the condition must hold, e.g. '2 runs'."
    )
    severity: Literal["warning", "critical"] = Field("warning", description="`warning` or `critical`.")
    repeat_every: Duration = Field(
        timedelta(days=3), description="While an alert keeps firing, remind its owners this often."
    )
    description: str = Field("", description="Why the rule exists, for readers of its findings.")
    action: str = Field(
        "", max_length=500, description="What to do about it, or a runbook link: shown with each alert."
    )


class Schedule(HeraldModel):
    cron: CronString | None = Field(
        None, description="When the job runs: minute hour day-of-month month day-of-week."
    )
    every: EveryPhrase | None = Field(
        None, description="Or a phrase: '10 minutes', 'hour', 'day at 07:00', 'monday at 08:00'."
    )
    timezone: TimeZoneName | None = Field(
        None, description="The schedule's time zone; the config's when unset."
    )
    as_of_days_before: int = Field(
        1, ge=0, le=31, description="The as-of date is this many days before the fire time's date."
    )
    grace: Duration = Field(
        timedelta(hours=6), description="How late a run missed while Herald was down may still start."
    )
    coalesce: bool = Field(True, description="Of several missed runs within the grace, run only the latest.")
    timeout: Duration = Field(
        timedelta(hours=1), description="A run working longer than this is marked failed and its owners told."
    )

    @model_validator(mode="after")
    def _one_form(self) -> Schedule:
        if (self.cron is None) == (self.every is None):
            raise fail("a schedule has either `cron` or `every`", "write one of them, e.g. cron: '0 7 * * *'")
        return self

    def trigger(self, default_timezone: str) -> Trigger:
        """When the job fires, in the schedule's zone (the config's when it names none)."""
        return trigger(self.cron, self.every, self.timezone or default_timezone)


class WaitForData(HeraldModel):
    every: Duration = Field(timedelta(minutes=10), description="How often to look again for the data.")
    until: TimeOfDay = Field(description="The latest time of day (in the schedule's zone) to wait until.")


class MuteWindow(HeraldModel):
    days: list[Weekday] = Field(list(WEEKDAYS), description="Days it applies on; every day when unset.")
    start: TimeOfDay = Field(
        time(0, 0), alias="from", description="When it starts, e.g. '22:00' (schedule's zone)."
    )
    until: TimeOfDay = Field(
        time(23, 59, 59), description="When it ends; before `from`, it runs on into the next day."
    )


class Escalation(HeraldModel):
    after: Duration = Field(description="How long a critical alert fires before it escalates, e.g. '2 days'.")
    to: list[OwnerAddress] = Field(description="Who else is told: email addresses or Slack #channels.")


class ReportConfig(HeraldModel):
    role: Literal["executive", "cs", "analyst"] = Field(description="Who reads it; picks its templates.")
    title: str | None = Field(None, description="Shown on the report; the job name when unset.")
    period: Grain = Field("week", description="The period it covers: day, week or month to date.")
    schedule: Schedule = Field(description="When it runs.")
    formats: list[_format_type()] = Field(default_factory=list, description="Files rendered.")  # type: ignore[valid-type]
    kpis: list[str] = Field(default_factory=list, description="KPIs shown, in order.")
    rules: list[str] | None = Field(None, description="Rules evaluated; every rule on its KPIs when unset.")
    trend_periods: int = Field(12, ge=2, le=104, description="Periods in trend charts.")
    scope: str | None = Field(
        None,
        description=(
            "Build one report per value of this entity column (e.g. owner), or per entity with "
            "`entity` (each reaches the entity's owner)."
        ),
    )
    only_with_findings: bool = Field(
        False,
        description="With `scope`: a recipient whose entities raised no finding gets nothing that day.",
    )
    wait_for_data: WaitForData | None = Field(
        None,
        description="Under `serve`, wait for the as-of day's data before running, e.g. {every: 10m, until: '10:00'}.",
    )
    when_late: Literal["mark", "withhold"] = Field(
        "mark",
        description="Data still late: `mark` sends reports with late figures flagged; `withhold` sends only the notice.",
    )
    mute: list[MuteWindow] = Field(
        default_factory=list,
        description="When alert messages are held back (e.g. weekends); they go out after the window.",
    )
    escalate: Escalation | None = Field(None, description="Where a long-firing critical alert also goes.")
    group_over: int = Field(
        10,
        ge=1,
        le=10_000,
        description="More entities than this for one rule: one line with the count in messages.",
    )
    page_size: Literal["A4", "Letter"] = Field("A4", description="Paper size of PDF reports.")
    top_movers: int = Field(5, ge=1, le=50, description="Entities listed as top risers and fallers.")
    deliver: list[delivery_type()] = Field(default_factory=list, description="Where it goes.")  # type: ignore[valid-type]
    owners: list[OwnerAddress] = Field(
        default_factory=list,
        description="Who is told when the job fails: email addresses or Slack #channels.",
    )

    @property
    def channels(self) -> list[str]:
        """The channel of each `deliver:` entry (an entry is a mapping with one key, the channel)."""
        return [next(iter(type(entry).model_fields)) for entry in self.deliver]


def _channels_model() -> type[HeraldModel]:
    """`channels:` holds each registered channel's connection settings, all optional."""
    fields: dict[str, Any] = {
        name: (cls.settings | None, Field(None, description=f"Connection settings for {name}."))
        for name, cls in notifier_types().items()
        if cls.settings is not None
    }
    return create_model("Channels", __base__=HeraldModel, **fields)


Channels = _channels_model()


class DeliveryPolicy(HeraldModel):
    attempts: int = Field(4, ge=1, le=20, description="Tries per delivery before it is recorded as failed.")
    backoff_seconds: float = Field(
        2.0, ge=0, le=3600, description="Wait before the first retry; doubled each time."
    )
    max_backoff_seconds: float = Field(60.0, ge=0, le=3600, description="The longest wait between tries.")


# The parsers of rule bounds, which take '80%' as well as a number (see reports/rules/threshold.py).
_PERCENT_PARSERS = {m.func for m in get_args(Number)[1:] if isinstance(m, BeforeValidator)}


class ConfigJsonSchema(GenerateJsonSchema):
    """config.yaml's JSON Schema. A rule bound (`below: "80%"`, `min_delta: "10%"`) is a number
    parsed by a validator that also takes a percentage; pydantic sees only the number, so say both."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        number = super().function_before_schema(schema)
        if schema["function"]["function"] in _PERCENT_PARSERS:
            return {"anyOf": [number, dict(PERCENT_JSON_SCHEMA)]}
        return number


def _redis_address(value: Any) -> str:
    """A Redis address for Celery. It may hold a password, so errors never quote it."""
    text = value if isinstance(value, str) else ""
    try:
        url = urlsplit(text)
        scheme, host = url.scheme, url.hostname if url.port is None or url.port > 0 else None
    except ValueError:  # a port that is not a number
        scheme, host = "", None
    if not (scheme in ("redis", "rediss") and host and text.isprintable() and " " not in text):
        raise fail(
            "only redis:// and rediss:// (TLS) addresses are allowed",
            "write e.g. redis://:${REDIS_PASSWORD}@queue.internal:6379/0",
        )
    return text


RedisAddress = Annotated[
    str,
    BeforeValidator(_redis_address),
    WithJsonSchema({"type": "string", "examples": ["redis://127.0.0.1:6379/0"]}),
]


class CeleryConfig(HeraldModel):
    """`executor: celery`: the Redis that carries batches to `run.py worker`, and their time limit."""

    broker: RedisAddress = Field(
        "redis://127.0.0.1:6379/0",
        description="Where batches wait for a worker; a password comes from the environment: "
        "`redis://:${REDIS_PASSWORD}@host:6379/0`.",
    )
    result_backend: RedisAddress | None = Field(
        None, description="Where workers leave what each batch did; the broker when unset."
    )
    queue: Name = Field(
        "herald", description="The queue batches go to; another Herald on the same Redis uses another."
    )
    task_timeout: Duration = Field(
        timedelta(minutes=30),
        description="The longest one batch may take: a worker stops one running longer, and the batch "
        "of a worker that died goes to another a little after this.",
    )

    @model_validator(mode="after")
    def _long_enough(self) -> CeleryConfig:
        if self.task_timeout < timedelta(seconds=5):
            raise fail("task_timeout is shorter than any batch", "write e.g. task_timeout: 30 minutes")
        return self


class WebConfig(HeraldModel):
    operators: list[OwnerAddress] = Field(
        default_factory=list,
        description="Addresses that see everything in the archive: every job, run, file, alert and the audit log.",
    )
    link_days: Annotated[int, Field(ge=1, le=366)] = Field(
        30, description="Days a personal link in an email or Slack message signs its reader in."
    )
    token_days: Annotated[int, Field(ge=1, le=366)] = Field(
        90, description="Days an API token made on the account page (or `run.py web --token`) lasts."
    )
    session_hours: Annotated[int, Field(ge=1, le=720)] = Field(
        12, description="Hours a browser stays signed in after opening a link."
    )


class ArchiveConfig(HeraldModel):
    keep_days: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Output files older than this many days are deleted from out/ (by `run.py prune`, "
        "and daily under `serve`); runs, deliveries and the audit log stay. Kept for ever when unset.",
    )


class HeraldConfig(HeraldModel):
    timezone: TimeZoneName = Field("UTC", description="Calendar days and schedules are in this zone.")
    week_start: Weekday = Field("monday", description="The first day of a week.")
    templates: Path | None = Field(
        None, description="A folder of templates that override Herald's own of the same name."
    )
    sources: dict[Name, _source_config_type()] = Field(description="Warehouses, by name.")  # type: ignore[valid-type]
    entities: dict[Name, EntityConfig] = Field(default_factory=dict, description="What KPIs are about.")
    kpis: dict[Name, KpiConfig] = Field(description="KPI definitions, by name.")
    rules: list[RuleConfig] = Field(default_factory=list, description="Threshold rules.")
    reports: dict[Name, ReportConfig] = Field(default_factory=dict, description="Jobs, by name.")
    channels: Channels = Field(  # type: ignore[valid-type]
        default_factory=Channels,
        description="How to reach email and Slack; without them, deliveries go to the outbox.",
    )
    delivery: DeliveryPolicy = Field(
        default_factory=DeliveryPolicy, description="Retries of failed deliveries."
    )
    workers: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = Field(
        "auto",
        description=(
            "Processes that render and deliver a job's reports: `auto` is one per core for a job with "
            "many reports, 0 renders in Herald's own process."
        ),
    )
    executor: Literal["local", "celery"] = Field(
        "local",
        description="Who renders and delivers a scoped job's batches: `local` is Herald's own machine "
        "(see `workers`), `celery` is `run.py worker` on any machine, over Redis.",
    )
    celery: CeleryConfig = Field(
        default_factory=CeleryConfig, description="Where `executor: celery` sends batches."
    )
    store: StoreLocation = Field(
        Path("data/herald.sqlite"),
        description="Where runs, deliveries and alert state are kept: a SQLite file, or a PostgreSQL "
        "database that several machines share, `postgresql://herald:${PG_PASSWORD}@host:5432/herald`.",
    )
    archive_url: WebAddress | None = Field(
        None, description="Where out/ is published; emails link files too large to attach from here."
    )
    web: WebConfig = Field(
        default_factory=WebConfig,
        description="The archive (`run.py web`): who sees everything, how long links last.",
    )
    archive: ArchiveConfig = Field(
        default_factory=ArchiveConfig, description="How long the archive keeps output files."
    )

    _base_dir: Path = PrivateAttr(default=Path())

    @classmethod
    def model_json_schema(  # type: ignore[override]
        cls, *args: Any, schema_generator: type[GenerateJsonSchema] = ConfigJsonSchema, **kwargs: Any
    ) -> dict[str, Any]:
        """The JSON Schema `run.py schema` prints, percentages in rule bounds included."""
        return super().model_json_schema(*args, schema_generator=schema_generator, **kwargs)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @overload
    def path(self, value: Path) -> Path: ...
    @overload
    def path(self, value: Path | str) -> Path | str: ...
    def path(self, value: Path | str) -> Path | str:
        """A path from the config, relative to the config file's folder (a store's URL as it is)."""
        if isinstance(value, str):
            return value
        return value if value.is_absolute() else self.base_dir / value

    @property
    def templates_dir(self) -> Path | None:
        if self.templates is None:
            return None
        return self.templates if self.templates.is_absolute() else self.base_dir / self.templates

    def rule(self, name: str) -> RuleConfig:
        return next(r for r in self.rules if r.name == name)

    def rules_for(self, job: str) -> list[RuleConfig]:
        report = self.reports[job]
        if report.rules is not None:
            return [self.rule(name) for name in report.rules]
        return [r for r in self.rules if r.kpi in report.kpis]
