"""`run.py web` (serve the archive, or print a sign-in link or API token) and `run.py prune`."""

from __future__ import annotations

import logging
from pathlib import Path

from reports.archive import tokens
from reports.config.load import load_config
from reports.errors import UsageError
from reports.store import Store
from reports.store.archive import Archive

log = logging.getLogger("herald.web")


def web(config_path: Path, out: Path, host: str, port: int, verbose: bool = False) -> int:
    """Serve the archive until stopped (Ctrl-C or SIGTERM)."""
    import uvicorn

    from reports.scheduler.serve import configure_logging
    from reports.web.app import make_app

    configure_logging("text", verbose)
    app = make_app(config_path, out)
    log.info("the archive of %s: http://%s:%d/ (files from %s)", config_path, host, port, out.resolve())
    # uvicorn's own access log would print each request's query string, and a sign-in link's
    # token with it: Herald's guard logs requests without it instead.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, proxy_headers=True)
    return 0


def credential(config_path: Path, who: str, kind: str, days: int | None) -> int:
    """Print a personal sign-in link (`--link`) or an API token (`--token`) for an address."""
    config = load_config(config_path)
    key = tokens.secret(required=True) or ""
    who = who.strip()
    if not who or any(c.isspace() for c in who):
        raise UsageError(
            f"'{who}' is not an address", "write an email address or a Slack #channel or @handle"
        )
    if kind == "link":
        made = tokens.sign_in_link(config, key, who, days=days)
        lasts = days or config.web.link_days
    else:
        lasts = days or config.web.token_days
        made = tokens.sign(key, "api", {"sub": who}, tokens.DAY * lasts)
    Archive(Store(config.path(config.store))).audit("herald (command line)", kind, who, f"valid {lasts} days")
    print(made)
    return 0


def prune(config_path: Path, out: Path) -> int:
    """`run.py prune`: delete output files older than `archive.keep_days`."""
    from reports.archive.prune import prune as prune_outputs

    config = load_config(config_path)
    done = prune_outputs(config, Store(config.path(config.store)), out)
    if done is None:
        raise UsageError(
            "the config keeps every output: archive.keep_days is not set",
            "add e.g. `archive: {keep_days: 400}` to config.yaml",
        )
    print(
        f"pruned {done.files} files ({done.bytes / 1024 / 1024:.1f} MB) older than {config.archive.keep_days} days"
    )
    return 0
