"""Hostile configs: each is refused by `validate` with exit 2, one `file:line:col` line per problem,
quickly, and without echoing anything that may be a secret."""

import datetime as dt
import time
from pathlib import Path

import pytest

from reports.config.load import parse_config
from tests.test_config import VALID, at

SECRETS = ("xoxb-123-secret", "hunter2", "s3cret-pw")
UNSET = "HERALD_HOSTILE_UNSET"
SECRET_VAR = "HERALD_HOSTILE_TOKEN"
DEEP = "[" * 10_000 + "]" * 10_000
BOMB = (
    "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
)
MERGED = (
    "kpis:\n  base: &kpi\n    label: Base\n    source: demo\n    sql: SELECT 2\n    unit: lots\n"
    "  events:\n    <<: *kpi\n    label: Events\n"
)
AFTER_REPORT = "    kpis: [events]"
NOT_A_DURATION = "write a number and a unit, e.g. '2 days' or '36 hours' (short: '10m', '6h')"
FINITE = "infinity and NaN are not allowed; write a number such as 60"
NOT_NAME = "is not a valid name — use lower-case letters, digits and underscores, e.g. 'usage_drop'"
TEMPLATES = "name a folder of templates (relative to the config's folder), or remove `templates:`"
TOO_LARGE = "the number is too large — no setting needs more than 10^18"

# (id, what to replace in VALID (None: `new` is the whole file), with what (bytes: written as they
# are), the token where the error points (`|` marks the exact spot), the line after `FILE:LINE:COL: `)
CASES = [
    # 1. not UTF-8 text
    (
        "latin-1 byte",
        "label: Events",
        "label: évents".encode("latin-1"),
        "évents",
        "the config is not UTF-8: byte 0xe9 cannot be read — "
        "the file must be UTF-8 text; save it as UTF-8 in your editor",
    ),
    (
        "NUL byte",
        "label: Events",
        "label: Ev\0nts",
        "\0",
        "the config contains a NUL byte — the file must be UTF-8 text; remove it",
    ),
    (
        "terminal escape",
        "label: Events",
        "label: \x1b[31mEvents",
        "\x1b",
        "the config contains the control character U+001B — the file must be UTF-8 text; remove it",
    ),
    # 2. tags
    (
        "custom tag",
        "label: Events",
        "label: !custom Events",
        "!custom",
        "tags are not supported (found '!custom') — "
        "remove the tag; Herald reads plain YAML (quote the value to keep it as text)",
    ),
    (
        "python tag",
        "    sql: SELECT 1",
        "    sql: !!python/object/apply:os.system [id]",
        "!!python",
        "tags are not supported (found '!!python/object/apply:os.system') — "
        "remove the tag; Herald reads plain YAML (quote the value to keep it as text)",
    ),
    (
        "standard tag",
        "severity: warning",
        "severity: !!str warning",
        "!!str",
        "tags are not supported (found '!!str') — "
        "remove the tag; Herald reads plain YAML (quote the value to keep it as text)",
    ),
    # 3. merge keys: supported; what they bring in is checked where it is written
    (
        "merged value is checked",
        "kpis:\n  events:\n    label: Events\n",
        MERGED,
        "lots",
        "kpis.events.unit: 'lots' is not allowed — use one of: count, percent, seconds, currency",
    ),
    (
        "merge of a scalar",
        "    label: Events\n",
        "    <<: 5\n    label: Events\n",
        "<<: |5",
        "`<<` merges a mapping into this one, not a single value — "
        "write `<<: *name` where `&name` marks a mapping",
    ),
    # 4. aliases
    (
        "billion laughs",
        "entities:\n",
        "entities:\n" + BOMB,
        "e: &e [|*d",
        "aliases expand to more than 10,000 values — write the values out, or nest fewer aliases",
    ),
    (
        "alias loop",
        "entities:\n",
        "entities:\n  loop: &loop [1, *loop]\n",
        "*loop]",
        "an alias refers to the value it is part of — remove the loop",
    ),
    (
        "undefined alias named like a token",
        "label: Events",
        "label: *xoxb-1234567890-abcdefghijklmnop",
        "*xoxb",
        "not valid YAML: found undefined alias (not shown) — mark a value with `&name` before `*name` refers to it",
    ),
    (
        "undefined alias",
        "label: Events",
        "label: *events",
        "*events",
        "not valid YAML: found undefined alias 'events' — mark a value with `&name` before `*name` refers to it",
    ),
    # 5. nesting
    (
        "10,000 nested lists",
        "label: Events",
        f"label: {DEEP}",
        "label: " + "[" * 29 + "|[",
        "the config nests more than 32 levels deep — a config needs a few levels; flatten it",
    ),
    # 6. names that YAML reads as numbers or lists
    ("KPI named 123", "  events:\n", "  123:\n", "123:", f"kpis: '123' {NOT_NAME}"),
    ("job named 2024", "  daily:", "  2024:", "2024:", f"reports: '2024' {NOT_NAME}"),
    ("source named 1.5", "  demo: {", "  1.5: {", "1.5", f"sources: '1.5' {NOT_NAME}"),
    ("rule named 123", "name: quiet", "name: 123", "123", f"rules[0].name: 123 {NOT_NAME}"),
    (
        "list as a key",
        "entities:\n",
        "entities:\n  ? [a, b]\n  : 1\n",
        "[a, b]",
        "a key must be a name, not a list or a mapping — write `name: value`",
    ),
    # 7. numbers: infinity, NaN, huge
    (
        "backoff .inf",
        "reports:",
        "delivery: {backoff_seconds: .inf}\nreports:",
        ".inf",
        f"delivery.backoff_seconds must be a finite number, not inf — {FINITE}",
    ),
    (
        "max backoff -.inf",
        "reports:",
        "delivery: {max_backoff_seconds: -.inf}\nreports:",
        "-.inf",
        f"delivery.max_backoff_seconds must be a finite number, not -inf — {FINITE}",
    ),
    (
        "attempts .nan",
        "reports:",
        "delivery: {attempts: .nan}\nreports:",
        ".nan",
        f"delivery.attempts must be a finite number, not nan — {FINITE}",
    ),
    (
        "backoff 1e308",
        "reports:",
        "delivery: {backoff_seconds: 1e308}\nreports:",
        "1e308",
        "delivery.backoff_seconds must be at most 3600, not '1e308' — use a smaller number",
    ),
    ("attempts 10**100", "reports:", f"delivery: {{attempts: {10**100}}}\nreports:", "1000", TOO_LARGE),
    ("5,000 digits", "below: 1", "below: " + "9" * 5000, "9999", TOO_LARGE),
    (
        "threshold overflowing to inf",
        "below: 1",
        "below: 1.0e+400",
        "1.0e+400",
        f"rules[0].when.below must be a finite number, not inf — {FINITE}",
    ),
    (
        "trend_periods .nan",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    trend_periods: .nan",
        ".nan",
        f"reports.daily.trend_periods must be a finite number, not nan — {FINITE}",
    ),
    (
        "top_movers huge",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    top_movers: 1000000",
        "1000000",
        "reports.daily.top_movers must be at most 50, not 1000000 — use a smaller number",
    ),
    (
        "group_over huge",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    group_over: 99999999",
        "99999999",
        "reports.daily.group_over must be at most 10000, not 99999999 — use a smaller number",
    ),
    (
        "max_attachment_mb .inf",
        "reports:",
        "channels: {email: {host: smtp.example.com, from: a@example.com, max_attachment_mb: .inf}}\nreports:",
        ".inf",
        f"channels.email.max_attachment_mb must be a finite number, not inf — {FINITE}",
    ),
    (
        "endless duration",
        "freshness: 2 days",
        "freshness: 99999999999 weeks",
        "99999999999",
        "kpis.events.freshness: '99999999999 weeks' is too long — a duration is at most 366 days",
    ),
    (
        "negative duration",
        "freshness: 2 days",
        "freshness: -2 days",
        "-2 days",
        f"kpis.events.freshness: '-2 days' is not a duration — {NOT_A_DURATION}",
    ),
    (
        "for: 0 runs",
        "    severity: warning",
        "    severity: warning\n    for: 0 runs",
        "0 runs",
        "rules[0].for: '0 runs' is not a number of runs — write how many runs in a row (1 to 1000), e.g. '2 runs'",
    ),
    (
        "for: 5000 runs",
        "    severity: warning",
        "    severity: warning\n    for: 5000 runs",
        "5000 runs",
        "rules[0].for: '5000 runs' is not a number of runs — "
        "write how many runs in a row (1 to 1000), e.g. '2 runs'",
    ),
    (
        "impossible date",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    wait_for_data: {{until: 2024-13-45}}",
        "2024-13-45",
        "'2024-13-45' looks like a date but is not a valid one — correct it, or quote it to keep it as text",
    ),
    (
        "time as a number",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    wait_for_data: {{until: 123}}",
        "123",
        "reports.daily.wait_for_data.until: 123 is not a time of day — write it as '09:00' (24-hour clock)",
    ),
    # 8. templates
    (
        "templates folder missing",
        "reports:",
        "templates: no_such_folder\nreports:",
        "no_such_folder",
        f"templates: 'no_such_folder' does not exist — {TEMPLATES}",
    ),
    (
        "templates is a file",
        "reports:",
        "templates: config.yaml\nreports:",
        "config.yaml",
        f"templates: 'config.yaml' is a file, not a folder — {TEMPLATES}",
    ),
    # 9. secrets in the wrong place: the key is named, the value never shown
    (
        "token under a misspelt key",
        "reports:",
        'channels: {slack: {tokn: "xoxb-123-secret"}}\nreports:',
        "tokn",
        "unknown key 'tokn' in channels.slack — did you mean 'token'? allowed keys: token,",
    ),
    (
        "password under a misspelt key",
        "reports:",
        "channels: {email: {host: smtp.example.com, from: a@example.com, pasword: hunter2}}\nreports:",
        "pasword",
        "unknown key 'pasword' in channels.email — did you mean 'password'? allowed keys: host,",
    ),
    (
        "token as a role",
        "role: cs",
        "role: xoxb-123-secret",
        "xoxb",
        "reports.daily.role: the value is not allowed — use one of: executive, cs, analyst",
    ),
    (
        "database URL as a source type",
        "type: duckdb",
        "type: postgres://admin:s3cret-pw@db.example.com/x",
        "postgres",
        "unknown source type (not shown) in sources.demo — use one of: bigquery, duckdb, sql",
    ),
    (
        "token as a recipient",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    deliver:\n      - email: {{to: [xoxb-123-secret]}}",
        "[xoxb",
        "reports.daily.deliver[0].email.to: the value is not an email address — write it as name@example.com",
    ),
    (
        "secret from the environment",
        "role: cs",
        f"role: ${{{SECRET_VAR}}}",
        "${",
        "reports.daily.role: the value is not allowed — use one of: executive, cs, analyst",
    ),
    (
        "archive_url with a password",
        "reports:",
        "archive_url: https://admin:hunter2@reports.example.com/\nreports:",
        "https",
        "archive_url: the address must not hold a user name or password — "
        "publish the archive at a plain https:// address",
    ),
    # and the everyday mistakes
    (
        "archive_url javascript:",
        "reports:",
        "archive_url: javascript:alert(1)\nreports:",
        "javascript",
        "archive_url: only http:// and https:// addresses are allowed — "
        "write e.g. https://reports.example.com/herald",
    ),
    (
        "email to: two addresses in one",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    deliver:\n      - email: {{to: 'ceo,attacker@evil.example'}}",
        "'ceo",
        "reports.daily.deliver[0].email.to: 'ceo,attacker@evil.example' is not an email address — "
        "write it as name@example.com",
    ),
    (
        "duplicate key",
        "    source: demo\n    sql",
        "    source: demo\n    label: Again\n    sql",
        "label: Again",
        "duplicate key 'label' — it is already defined on line 5; keep one of them or rename this one",
    ),
    (
        "list for a mapping",
        "entities:\n  project: {source: demo, sql: SELECT 1}",
        "entities: [project]",
        "[project]",
        "entities must be a mapping (key: value), not a list — fix the value's type",
    ),
    (
        "list for a name",
        "    kpi: events",
        "    kpi: [events]",
        "[events]",
        "rules[0].kpi must be text, not a list — fix the value's type",
    ),
    (
        "empty section",
        "entities:\n  project: {source: demo, sql: SELECT 1}",
        "entities:",
        "entities:|",
        "entities must be a mapping (key: value), but it is empty — fix the value's type",
    ),
    (
        "empty file",
        None,
        "",
        "",
        "the config must be a mapping of sections — start with `sources:`, `kpis:`, `rules:` and `reports:`",
    ),
    (
        "only a comment",
        None,
        "# nothing here yet\n",
        "#",
        "the config must be a mapping of sections — start with `sources:`, `kpis:`, `rules:` and `reports:`",
    ),
    (
        "two documents",
        None,
        VALID + "---\n" + VALID,
        "---",
        "not valid YAML: expected a single document in the stream, but found another document — "
        "check the indentation and quoting on this line",
    ),
    (
        "tab indentation",
        "    label: Events",
        "\tlabel: Events",
        "\t",
        "not valid YAML: while scanning for the next token, found character '\\t' that cannot start any token — "
        "indent with spaces, not tabs",
    ),
    (
        "unterminated quote",
        AFTER_REPORT,
        f'{AFTER_REPORT}\n    title: "Daily',
        '"Daily',
        "not valid YAML: while scanning a quoted scalar, found unexpected end of stream — "
        "close the quote or bracket that starts here",
    ),
    (
        "unclosed bracket",
        AFTER_REPORT,
        "    kpis: [events",
        "[events",
        "not valid YAML: while parsing a flow sequence, expected ',' or ']', but got '<stream end>' — "
        "close the quote or bracket that starts here",
    ),
    (
        "unset variable",
        "path: demo.duckdb",
        f'path: "${{{UNSET}}}/demo.duckdb"',
        '"${',
        f"environment variable {UNSET} is not set — export {UNSET}=... before running Herald, "
        f"or write ${{{UNSET}:-default}}",
    ),
    (
        "unknown rule condition",
        "when: {below: 1}",
        "when: {sometimes: 1}",
        "{sometimes",
        "rules[0].when: `when` must be a mapping with exactly one of: above, below,",
    ),
    (
        "unknown format",
        AFTER_REPORT,
        f"{AFTER_REPORT}\n    formats: [docx]",
        "docx",
        "reports.daily.formats[0]: 'docx' is not allowed — use one of:",
    ),
    (
        "endless cron",
        '"0 7 * * *"',
        '"' + "0 7 * * * " * 100 + '"',
        '"0 7',
        "reports.daily.schedule.cron: the value is not a valid cron schedule — use five fields, "
        "minute hour day-of-month month day-of-week, e.g. '0 8 * * MON'",
    ),
    (
        "10 MB file",
        None,
        VALID + "# " + "x" * 10_000_000 + "\n",
        "",
        "the config is larger than 2 MB — a config is a few kilobytes of YAML; check that --config names the right file",
    ),
    (
        "100,000 values",
        None,
        "many: [" + "1, " * 100_000 + "1]\n" + VALID,
        "many: [" + "1, " * 19_999 + "|1",  # the key and 19,999 items make 20,000
        "the config holds more than 20,000 values — a config needs a few hundred; "
        "check that --config names the right file",
    ),
]


@pytest.fixture
def validate(herald, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a config, run `validate` on it, and return (config path, exit code, stderr lines)."""
    monkeypatch.delenv(UNSET, raising=False)
    monkeypatch.setenv(SECRET_VAR, "hunter2")

    def run(content: str | bytes) -> tuple[Path, int, list[str]]:
        path = tmp_path / "config.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        started = time.perf_counter()
        result = herald("validate", "--config", path)
        assert time.perf_counter() - started < 2, "validate took too long"
        return path, result.code, result.err.strip().splitlines()

    return run


@pytest.mark.parametrize(
    ("old", "new", "token", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_hostile_config_is_refused_with_its_place_and_fix(validate, old, new, token, expected):
    text = new.decode("latin-1") if isinstance(new, bytes) else new
    if old is not None:
        assert VALID.count(old) == 1, old
        text = VALID.replace(old, text)
        new = VALID.replace(old, "\0").encode("utf-8").replace(b"\0", new) if isinstance(new, bytes) else text
    path, code, lines = validate(new)
    where = at(text, token) if token else "1:1"
    assert code == 2
    assert lines and all(line.startswith(f"{path}:") for line in lines), lines
    matching = [line for line in lines if line.startswith(f"{path}:{where}: {expected}")]
    assert matching, f"expected {where}: {expected!r} in {lines}"
    output = "\n".join(lines)
    assert not any(secret in output for secret in SECRETS), output
    assert "input_value" not in output and "internal error" not in output and "Traceback" not in output


def test_a_byte_order_mark_is_accepted(validate):
    _, code, lines = validate(b"\xef\xbb\xbf" + VALID.encode("utf-8"))
    assert code == 0 and lines == []


def test_merge_keys_fill_in_what_a_mapping_does_not_set():
    text = VALID.replace("kpis:\n  events:\n    label: Events\n", MERGED.replace("lots", "percent"))
    config = parse_config(text, environ={})
    events = config.kpis["events"]
    assert (events.label, events.unit, events.sql) == ("Events", "percent", "SELECT 1")
    assert config.kpis["base"].sql == "SELECT 2"


def test_times_may_be_written_unquoted():
    text = VALID + "    wait_for_data: {every: 10m, until: 10:30}\n    mute: [{from: 22:00, until: 06:00}]\n"
    report = parse_config(text, environ={}).reports["daily"]
    assert report.wait_for_data.until == dt.time(10, 30)  # not 630 seconds, as YAML 1.1 reads 10:30
    assert (report.mute[0].start, report.mute[0].until) == (dt.time(22), dt.time(6))
