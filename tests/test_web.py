"""The archive (`run.py web`) over HTTP, served by uvicorn on loopback: who sees what (every CS
owner against every output in the store), signed links and tokens, traversal, CSRF, the
OpenAPI document against every answer, retention, and the audit log."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import uvicorn
from openapi_spec_validator import validate as validate_openapi

from reports.archive import tokens
from reports.archive.prune import prune, prune_daily
from reports.config.load import load_config
from reports.store import Store, now_utc
from reports.store.archive import EVERYONE, Archive
from reports.web.app import make_app
from tests.conftest import demo_folder, execute_job
from tests.servers import free_port

SECRET = "test-secret-for-the-archive-0123456789-abcdef"
OPERATOR = "ops@example.com"


@contextmanager
def archive_server(config: Path, out: Path, port: int | None = None) -> Iterator[str]:
    """`run.py web`'s app under uvicorn on a loopback port (a free one unless given), in a
    thread; its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_app(config, out, SECRET), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the archive did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def fetch(base: str, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    """One request with the path sent exactly as written (no client-side normalising)."""
    where = urlsplit(base)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def bearer(who: str, seconds: float = 3600) -> dict[str, str]:
    return {"Authorization": "Bearer " + tokens.sign(SECRET, "api", {"sub": who}, seconds)}


def session(base: str, link: str) -> dict[str, str]:
    """Open a sign-in link; the Cookie header of the session it starts."""
    answer = fetch(base, link[len(base) :] if link.startswith(base) else link)
    assert answer.status == 303, answer
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    return {"Cookie": cookie.split(";")[0]}


@pytest.fixture(scope="module")
def archive(tmp_path_factory, demo_db):
    """Three demo jobs run with an archive: the CS alerts scoped per owner (Slack only, so each
    owner's page is their archived message), the executive report and the analyst workbook; then
    the archive serving them."""
    folder = tmp_path_factory.mktemp("archive")
    port = free_port()

    def edit(data: dict) -> None:
        data["archive_url"] = f"http://127.0.0.1:{port}"
        data["web"] = {"operators": [OPERATOR]}

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HERALD_WEB_SECRET", SECRET)
        config = demo_folder(folder / "cfg", demo_db, edit)
        out = folder / "out"
        for job in ("cs_daily_alerts", "executive_weekly", "analyst_monthly"):
            outcome, store = execute_job(config, job, out)
            assert outcome.ok, outcome.problems()
        with archive_server(config, out, port) as base:
            yield base, config, out, store


def test_every_run_records_its_files(archive):
    _, _, out, store = archive
    rows = Archive(store).select_outputs()
    written = {p.resolve() for p in out.rglob("*") if p.is_file() and "outbox" not in p.parts}
    assert {Path(r.path) for r in rows} == written
    scoped = [r for r in rows if r.recipient != EVERYONE]
    assert len({r.email for r in scoped}) >= 3, "several owners should have their own outputs"
    assert all(r.folder and r.entities and r.size for r in scoped)
    xlsx = next(r for r in rows if r.name.endswith(".xlsx"))
    assert (
        xlsx.media_type.startswith("application/vnd.openxmlformats")
        and xlsx.size == Path(xlsx.path).stat().st_size
    )


def test_each_owner_is_served_only_their_own_outputs(archive):
    base, _, _, store = archive
    rows = Archive(store).select_outputs()
    owners = sorted({r.email for r in rows if r.email})
    leaks = []
    for owner in owners:
        theirs = {r.id for r in rows if r.email == owner}
        served = set()
        for row in rows:
            answer = fetch(base, f"/api/v1/outputs/{row.id}/content", headers=bearer(owner))
            assert answer.status in (200, 404), answer.status
            if answer.status == 200:
                served.add(row.id)
                assert answer.body == Path(row.path).read_bytes()
            else:
                assert answer.json() == {"error": "Not found"}  # the same as for no such output
        if served != theirs:
            leaks.append((owner, sorted(served - theirs), sorted(theirs - served)))
        assert len(theirs) >= 2
    for owner, extra, missing in leaks:
        print(f"LEAK {owner}: served others' outputs {extra}; refused their own {missing}")
    assert leaks == []


def test_a_link_from_an_owners_message_signs_in_that_owner_only(archive):
    base, _, _, store = archive
    rows = Archive(store).select_outputs()
    owner = next(r for r in rows if r.email and r.name == "email.html")
    slack = json.loads((Path(owner.path).parent / "slack.json").read_text())
    (link,) = [
        b["elements"][0]["text"].split("|")[0].lstrip("<")
        for b in slack["blocks"]
        if "Open the full report" in json.dumps(b)
    ]
    assert link.startswith(f"{base}/signin?t=h1.")
    cookie = session(base, link)
    others = [r for r in rows if r.email != owner.email]
    assert all(fetch(base, f"/outputs/{r.id}", headers=cookie).status == 404 for r in others)
    assert fetch(base, f"/outputs/{owner.id}", headers=cookie).status == 200
    me = fetch(base, "/api/v1/me", headers=cookie).json()
    assert me == {"who": owner.email, "operator": False, "jobs": []}
    runs = fetch(base, "/api/v1/runs", headers=cookie).json()["items"]
    assert [r["job"] for r in runs] == ["cs_daily_alerts"]
    findings = fetch(base, f"/api/v1/runs/{owner.run_id}/findings", headers=cookie).json()["items"]
    mine = set(owner.entity_ids or [])
    assert findings and all(f["entity"] in mine for f in findings)
    # the Slack message sent to them, and no one else's
    assert [d["recipient"] for d in runs[0]["deliveries"]] == [owner.slack]


def test_the_analyst_sees_their_job_and_nothing_else(archive):
    base, _, _, store = archive
    rows = Archive(store).select_outputs()
    served = {
        r.id
        for r in rows
        if fetch(base, f"/api/v1/outputs/{r.id}", headers=bearer("analysts@example.com")).status == 200
    }
    expected = {r.id for r in rows if r.path.split("/")[-3] == "analyst_monthly"}
    assert served == expected and expected
    jobs = fetch(base, "/api/v1/jobs", headers=bearer("Analysts@Example.com")).json()["items"]
    assert [j["job"] for j in jobs] == ["analyst_monthly"]


def test_expired_tampered_and_misused_tokens_are_refused(archive):
    base, *_ = archive
    good = bearer(OPERATOR)["Authorization"]
    assert fetch(base, "/api/v1/me", headers={"Authorization": good}).status == 200
    expired = bearer(OPERATOR, seconds=-5)
    head, _, mac = good.split(" ")[1].split(".")
    forged = json.dumps({"exp": 4_000_000_000, "p": "api", "sub": OPERATOR}).encode()
    tampered = {
        "Authorization": "Bearer " + ".".join([head, tokens._b64(forged), mac]),
    }
    other_key = {
        "Authorization": "Bearer " + tokens.sign("another-secret-" * 3, "api", {"sub": OPERATOR}, 3600)
    }
    as_link = {"Authorization": "Bearer " + tokens.sign(SECRET, "link", {"sub": OPERATOR}, 3600)}
    for headers in (expired, tampered, other_key, as_link, {"Authorization": "Bearer nonsense"}, {}):
        answer = fetch(base, "/api/v1/me", headers=headers)
        assert answer.status == 401 and answer.headers["www-authenticate"] == "Bearer"
    session_link = tokens.sign(SECRET, "session", {"sub": OPERATOR, "n": "x"}, 3600)
    assert fetch(base, f"/signin?t={session_link}").status == 401  # a cookie is not a link
    assert fetch(base, "/signin?t=h1.e30.AAAA").status == 401
    assert fetch(base, "/jobs", headers={"Cookie": "herald_session=h1.e30.AAAA"}).status == 401


@pytest.mark.parametrize(
    "path",
    [
        "/outputs/../config.yaml",
        "/outputs/..%2f..%2fcfg%2fconfig.yaml",
        "/outputs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/outputs/1/..%2f..%2f..%2fcfg%2fconfig.yaml",
        "/api/v1/outputs/..%2F..%2Fcfg%2Fconfig.yaml/content",
        "/api/v1/outputs/1%2F..%2F..%2Fetc%2Fpasswd/content",
        "/static/..%2f..%2fconfig.yaml",
        "/static/../../config.yaml",
        "/runs/1/findings.json%2f..%2f..%2fconfig.yaml",
        "/outputs/-1",
        "/outputs/99999999",
    ],
)
def test_paths_from_the_request_are_never_files(archive, path):
    base, *_ = archive
    answer = fetch(base, path, headers=bearer(OPERATOR))
    assert answer.status == 404, (path, answer.status)
    assert b"sources:" not in answer.body and b"root:" not in answer.body


def test_downloads_carry_their_type_and_name_and_html_runs_no_script(archive):
    base, _, _, store = archive
    rows = Archive(store).select_outputs()
    workbook = next(r for r in rows if r.name.endswith(".xlsx"))
    answer = fetch(base, f"/outputs/{workbook.id}", headers=bearer(OPERATOR))
    assert answer.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert answer.headers["content-disposition"] == f'attachment; filename="{workbook.name}"'
    assert answer.body == Path(workbook.path).read_bytes()
    page = next(r for r in rows if r.name == "executive_weekly-2026-11-22.html")
    answer = fetch(base, f"/outputs/{page.id}/view", headers=bearer(OPERATOR))
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-disposition"].startswith("inline;")
    assert answer.headers["content-security-policy"] == (
        "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
    )
    csv = fetch(base, f"/runs/{page.run_id}/findings.csv", headers=bearer(OPERATOR))
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.body.decode().splitlines()[0].startswith("severity,rule,kpi,entity")
    pages = fetch(base, "/jobs", headers=bearer(OPERATOR))
    assert "script-src" not in pages.headers["content-security-policy"]
    assert "default-src 'none'" in pages.headers["content-security-policy"]
    assert b"<script" not in pages.body


def test_forms_need_the_sessions_csrf_token(archive):
    base, *_ = archive
    cookie = session(base, tokens.sign_in_link(load_config(archive[1]), SECRET, OPERATOR))
    form = {"Content-Type": "application/x-www-form-urlencoded", **cookie}
    body = b"rule=usage_drop&entity=p0003&ends=2099-01-01T00:00&reason=test"
    assert fetch(base, "/alerts/silence", "POST", form, body).status == 403
    assert fetch(base, "/alerts/silence", "POST", form, body + b"&csrf=forged").status == 403
    page = fetch(base, "/alerts", headers=cookie).body.decode()
    token = page.split('name="csrf" value="')[1].split('"')[0]
    cross_site = {**form, "Origin": "https://evil.example"}
    assert fetch(base, "/alerts/silence", "POST", cross_site, body + f"&csrf={token}".encode()).status == 403
    # The API takes changes from a Bearer token only, never from a browser's cookie.
    api = {"Content-Type": "application/json", **cookie}
    assert fetch(base, "/api/v1/silences", "POST", api, b"{}").status == 401


def test_silencing_through_the_api_is_audited_and_scoped(archive):
    base, _, _, store = archive
    rows = [r for r in Archive(store).select_outputs() if r.email]
    owner = rows[0].email
    alerts = fetch(base, "/api/v1/alerts?state=firing", headers=bearer(owner)).json()["items"]
    mine = next(a for a in alerts if a["entity"] and a["may_silence"])
    entity = mine["entity"]
    ends = (now_utc() + timedelta(hours=5)).isoformat()
    made = fetch(
        base,
        "/api/v1/silences",
        "POST",
        {"Content-Type": "application/json", **bearer(owner)},
        json.dumps(
            {"rule": mine["rule"], "entity": entity, "ends": ends, "reason": "customer told us"}
        ).encode(),
    )
    assert made.status == 201, made.body
    silence = made.json()
    assert (silence["rule"], silence["entity"], silence["may_lift"]) == (mine["rule"], entity, True)
    # Another owner neither sees nor lifts it; an alert not theirs cannot be silenced by them.
    other = next(r.email for r in rows if entity not in (r.entity_ids or []))
    assert silence["id"] not in [
        s["id"] for s in fetch(base, "/api/v1/silences", headers=bearer(other)).json()["items"]
    ]
    assert fetch(base, f"/api/v1/silences/{silence['id']}", "DELETE", bearer(other)).status == 404
    refused = fetch(
        base,
        "/api/v1/silences",
        "POST",
        {"Content-Type": "application/json", **bearer(other)},
        json.dumps({"rule": mine["rule"], "entity": entity, "ends": ends, "reason": "not mine"}).encode(),
    )
    assert refused.status == 404
    assert fetch(base, f"/api/v1/silences/{silence['id']}", "DELETE", bearer(owner)).status == 204
    log = fetch(base, "/api/v1/audit?action=silence", headers=bearer(OPERATOR)).json()["items"]
    assert log[0]["who"] == owner and log[0]["target"] == f"silence {silence['id']}" and log[0]["client"]
    assert fetch(base, "/api/v1/audit", headers=bearer(owner)).status == 404
    assert fetch(base, "/audit", headers=bearer(owner)).status == 404


def test_every_download_is_in_the_audit_log(archive):
    base, _, _, store = archive
    row = Archive(store).select_outputs()[0]
    fetch(base, f"/api/v1/outputs/{row.id}/content", headers=bearer(OPERATOR))
    (entry,) = fetch(base, "/api/v1/audit?action=download&limit=1", headers=bearer(OPERATOR)).json()["items"]
    assert (entry["who"], entry["target"], entry["client"]) == (OPERATOR, f"output {row.id}", "127.0.0.1")


def test_runs_page_through_with_a_cursor(archive):
    base, _, _, store = archive
    seen, cursor = [], None
    while True:
        page = fetch(
            base, "/api/v1/runs?limit=1" + (f"&cursor={cursor}" if cursor else ""), headers=bearer(OPERATOR)
        ).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 3
    about = {
        r.run_id
        for r in Archive(store).select_outputs()
        if r.name == "findings.json" and "Nimbus Paper" in Path(r.path).read_text()
    }
    found = fetch(base, "/api/v1/runs?entity=nimbus", headers=bearer(OPERATOR)).json()["items"]
    assert {r["id"] for r in found} == about and len(about) == 2
    dated = fetch(base, "/api/v1/runs?from=2026-11-23", headers=bearer(OPERATOR)).json()
    assert dated == {"items": [], "next_cursor": None}


OPENAPI_SHAPE = {
    "type": "object",
    "required": ["openapi", "info", "paths", "components"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.\d+\.\d+$"},
        "info": {"type": "object", "required": ["title", "version"]},
        "paths": {
            "type": "object",
            "patternProperties": {
                "^/": {
                    "type": "object",
                    "propertyNames": {
                        "enum": ["get", "post", "delete", "put", "patch", "parameters", "summary"]
                    },
                    "additionalProperties": {
                        "type": "object",
                        "required": ["responses"],
                        "properties": {"responses": {"type": "object", "minProperties": 1}},
                    },
                }
            },
            "additionalProperties": False,
        },
        "components": {"type": "object", "properties": {"schemas": {"type": "object"}}},
    },
}


def test_the_openapi_document_describes_every_answer(archive):
    base, _, _, store = archive
    doc = fetch(base, "/api/v1/openapi.json").json()
    jsonschema.validate(doc, OPENAPI_SHAPE)
    validate_openapi(doc)  # against the OpenAPI 3.1 specification's own schema
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    app = make_app(archive[1], archive[2], SECRET)
    (api,) = [r for r in app.routes if getattr(r, "path", "") == "/api/v1"]
    served = {r.path.replace(":int", "").replace(":str", "") for r in api.routes} - {"/openapi.json"}
    assert set(doc["paths"]) == served

    def check(path: str, answer: Answer, status: str = "200") -> None:
        documented = doc["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]
        jsonschema.validate(answer.json(), {**documented, "components": doc["components"]})

    run = fetch(base, "/api/v1/runs", headers=bearer(OPERATOR)).json()["items"][0]
    output = Archive(store).select_outputs(limit=1)[0]
    job = run["job"]
    for path, real in [
        ("/me", "/api/v1/me"),
        ("/jobs", "/api/v1/jobs"),
        ("/jobs/{job}", f"/api/v1/jobs/{job}"),
        ("/runs", "/api/v1/runs"),
        ("/runs/{run_id}", f"/api/v1/runs/{run['id']}"),
        ("/runs/{run_id}/outputs", f"/api/v1/runs/{run['id']}/outputs"),
        ("/runs/{run_id}/findings", f"/api/v1/runs/{run['id']}/findings"),
        ("/outputs/{output_id}", f"/api/v1/outputs/{output.id}"),
        ("/alerts", "/api/v1/alerts"),
        ("/silences", "/api/v1/silences"),
        ("/audit", "/api/v1/audit"),
    ]:
        answer = fetch(base, real, headers=bearer(OPERATOR))
        assert answer.status == 200, (real, answer.body)
        check(path, answer)
        if "{" in path:
            missing = (
                real.replace(str(run["id"]), "99999").replace(str(output.id), "99999").replace(job, "nope")
            )
            check(path, fetch(base, missing, headers=bearer(OPERATOR)), "404")
        check(path, fetch(base, real), "401")
    assert fetch(base, "/openapi.json").json() == doc  # where DESIGN.md promises it too


def test_retention_deletes_old_files_and_keeps_the_logs(tmp_path, demo_db, monkeypatch, herald):
    monkeypatch.setenv("HERALD_WEB_SECRET", SECRET)
    config = demo_folder(tmp_path / "cfg", demo_db, lambda d: d.update(archive={"keep_days": 30}))
    out = tmp_path / "out"
    outcome, store = execute_job(config, "executive_weekly", out)
    assert outcome.ok
    loaded = load_config(config)
    assert prune(loaded, store, out).files == 0  # nothing is 30 days old yet
    later = now_utc() + timedelta(days=31)
    stray = out / "executive_weekly" / "2026-11-22" / "notes.txt"  # written before the archive knew
    stray.write_text("old")
    files = [p for p in out.rglob("*") if p.is_file()]  # the outputs, the stray, the outbox's emails
    size = sum(p.stat().st_size for p in files)
    assert len(files) > len(Archive(store).select_outputs()) + 1
    done = prune(loaded, store, out, later)
    assert (done.files, done.bytes) == (len(files), size)
    assert not [p for p in out.rglob("*") if p.is_file()]
    assert all(o.pruned for o in Archive(store).select_outputs())
    assert store.runs() and store.deliveries()  # the run and delivery log stay
    with archive_server(config, out) as base:
        row = Archive(store).select_outputs()[0]
        assert (
            fetch(base, f"/api/v1/outputs/{row.id}/content", headers=bearer("ceo@example.com")).status == 410
        )
    # Under `serve`: once a day, whichever process gets there first.
    prune_daily(loaded, store, out, later + timedelta(hours=1))
    prune_daily(loaded, store, out, later + timedelta(hours=25))
    assert len(Archive(store).audit_log(action="prune")) == 3
    result = herald("--config", config, "prune", "--out", out)
    assert result.code == 0 and result.out.startswith("pruned 0 files")


def test_prune_without_keep_days_says_how_to_set_it(tmp_path, demo_db, herald):
    config = demo_folder(tmp_path / "cfg", demo_db)
    result = herald("--config", config, "prune")
    assert result.code == 2 and "archive.keep_days is not set" in result.err and "Traceback" not in result.err


def test_web_needs_a_secret_and_never_shows_it(tmp_path, demo_db, herald, monkeypatch, caplog):
    config = demo_folder(tmp_path / "cfg", demo_db)
    monkeypatch.delenv("HERALD_WEB_SECRET", raising=False)
    result = herald("--config", config, "web", "--link", OPERATOR)
    assert result.code == 2 and "HERALD_WEB_SECRET is not set" in result.err
    monkeypatch.setenv("HERALD_WEB_SECRET", SECRET)
    link = herald("--config", config, "web", "--link", OPERATOR).out.strip()
    claims = tokens.verify(SECRET, "link", link.split("t=")[1])
    assert claims["sub"] == OPERATOR and claims["exp"] > time.time() + 29 * 86400
    token = herald("--config", config, "web", "--token", "a@example.com", "--days", "2").out.strip()
    assert tokens.verify(SECRET, "api", token)["sub"] == "a@example.com"
    store = Store(load_config(config).path(load_config(config).store))
    assert [r.action for r in Archive(store).audit_log()] == ["token", "link"]
    assert SECRET not in caplog.text and SECRET not in link + token


def test_archive_links_are_signed_for_the_reports_recipient(tmp_path, monkeypatch):
    from reports.render.outputs import archive_link

    config = load_config(Path(__file__).resolve().parent.parent / "config.yaml")
    config = config.model_copy(update={"archive_url": "https://reports.example.com/herald"})
    everyone = tmp_path / "out" / "analyst_monthly" / "2026-11-22" / "analyst_monthly-2026-11-22.xlsx"
    owner = (
        tmp_path
        / "out"
        / "cs_daily_alerts"
        / "2026-11-22"
        / "amara-okafor"
        / "cs_daily_alerts-2026-11-22.html"
    )
    monkeypatch.delenv("HERALD_WEB_SECRET", raising=False)
    assert archive_link(config, everyone) == (
        "https://reports.example.com/herald/analyst_monthly/2026-11-22/analyst_monthly-2026-11-22.xlsx"
    )
    monkeypatch.setenv("HERALD_WEB_SECRET", SECRET)
    for path, who in (
        (everyone, "analysts@example.com"),
        (owner, "folder:cs_daily_alerts/amara-okafor"),
        (tmp_path / "out" / "executive_weekly" / "2026-11-22" / "x.pdf", "job:executive_weekly"),
    ):
        link = archive_link(config, path)
        assert link.startswith("https://reports.example.com/herald/signin?t=h1.")
        claims = tokens.verify(SECRET, "link", link.split("t=")[1])
        assert claims["sub"] == who and claims["go"]["name"] == path.name


def test_the_archives_queries_run_on_a_postgresql_store(tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from reports.store.archive import NewOutput
    from reports.web.access import Viewer
    from reports.web.queries import Reading, RunFilter
    from tests.warehouses import postgres_server

    config = load_config(Path(__file__).resolve().parent.parent / "config.yaml")
    with postgres_server() as url:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as db:
            db.exec_driver_sql("CREATE DATABASE archive OWNER herald")
        admin.dispose()
        store = Store(make_url(url).set(drivername="postgresql", database="archive").render_as_string())
        archive = Archive(store)
        run_id = store.start_run("cs_daily_alerts", "2026-11-22")
        store.finish_run(run_id, "ok", 0)
        files = []
        for owner in ("ann@example.com", "bo@example.com"):
            path = tmp_path / owner / "report.html"
            path.parent.mkdir()
            path.write_text(owner)
            files.append(
                NewOutput(
                    "k-" + owner, owner, owner, owner, None, ["p1"], path.name, str(path), "text/html", 3
                )
            )
        assert archive.record_outputs(run_id, files) == 2
        ann = Reading(config, store, Viewer("ann@example.com", addresses=frozenset({"ann@example.com"})))
        assert [o.label for o in ann.outputs(run_id)] == ["ann@example.com"]
        assert [r["id"] for r in ann.runs(RunFilter(job="cs_daily_alerts", status="ok")).items] == [run_id]
        nobody = Reading(config, store, Viewer("carl@example.com", addresses=frozenset({"carl@example.com"})))
        assert nobody.runs(RunFilter()).items == [] and nobody.output(ann.outputs(run_id)[0].id) is None
        assert ann.alerts()["firing"] == [] and ann.silences() == []
        archive.audit("ann@example.com", "download", "output 1", client="127.0.0.1")
        archive.mark_pruned(archive.output_ids())
        assert [r.action for r in archive.audit_log()] == ["download"]
        assert all(o.pruned for o in archive.select_outputs())
        assert archive.last("download") is not None


def test_a_jobs_next_run_is_shown_in_its_schedules_time_zone(archive):
    """`0 8 * * MON` in Europe/London reads 08:00 there, GMT or BST, never the UTC hour."""
    base = archive[0]
    jobs = {j["job"]: j for j in fetch(base, "/api/v1/jobs", headers=bearer(OPERATOR)).json()["items"]}
    weekly = jobs["executive_weekly"]
    local = datetime.fromisoformat(weekly["next_run"]).astimezone(ZoneInfo(weekly["timezone"]))
    assert (local.hour, local.minute, local.weekday()) == (8, 0, 0)
    page = fetch(base, "/jobs", headers=bearer(OPERATOR)).body.decode()
    assert f"{local:%d %b %Y} 08:00 {local.tzname()}".lstrip("0") in page
