#!/usr/bin/env python3
"""Herald's command line: parses arguments and calls the engine (`reports.commands`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from reports.errors import ConfigError, HeraldError, UsageError


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date; write it as YYYY-MM-DD") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) > 64:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of workers from 0 to 64, or auto")
    return int(text)


def version() -> str:
    """Herald's version: the installed package's, else the one pyproject.toml beside this file names."""
    from importlib import metadata

    try:
        return metadata.version("herald")
    except metadata.PackageNotFoundError:
        import tomllib

        with open(Path(__file__).with_name("pyproject.toml"), "rb") as file:
            return tomllib.load(file)["project"]["version"]


class _Version(argparse.Action):
    """`--version`, looked up only when asked for, so `--help` stays fast."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"herald {version()}")
        parser.exit()


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--config, -v and -q. The main parser holds the defaults; each command's copy has none
    (SUPPRESS), so `--config x run JOB` is not undone by `run`'s own default for --config."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config", type=Path, default=default(Path("config.yaml")), help="config file (config.yaml)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log what Herald does"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="errors only: no progress"
    )


def parser(prog: str = "run.py") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    main = argparse.ArgumentParser(prog=prog, description="Herald: scheduled KPI reports and alerts.")
    main.add_argument("--version", action=_Version, help="print Herald's version and exit")
    _global_options(main, defaults=True)
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", parents=[common], help="check the config; exit 2 listing every error"
    )
    validate.add_argument(
        "--check-sources", action="store_true", help="also connect to each source and dry-run every KPI query"
    )
    schema = commands.add_parser("schema", parents=[common], help="print the config's JSON Schema")
    schema.add_argument("--markdown", action="store_true", help="print the config reference instead")
    jobs = commands.add_parser("list", parents=[common], help="jobs, their next run, formats and recipients")
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON")

    run = commands.add_parser("run", parents=[common], help="run jobs now for an as-of date")
    run.add_argument("jobs", nargs="*", metavar="JOB", help="jobs to run (see `list`)")
    run.add_argument("--all", action="store_true", help="run every job")
    run.add_argument("--as-of", type=_date, help="the last day of data to use (default: yesterday)")
    run.add_argument("--dry-run", action="store_true", help="deliver to the outbox only (out/outbox/)")
    run.add_argument("--json", action="store_true", help="print findings as JSON")
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--resend", action="store_true", help="send again what already went out for this as-of date"
    )
    again.add_argument(
        "--retry-failed", action="store_true", help="send only the deliveries that failed, as they were"
    )
    run.add_argument("--out", type=Path, default=Path("out"), help="write outputs under OUT/JOB/AS_OF/ (out)")
    run.add_argument(
        "--workers",
        type=_workers,
        help="processes rendering and delivering reports: a number (0: this one) or auto (config `workers:`)",
    )

    preview = commands.add_parser("preview", parents=[common], help="render a job's outputs to out/preview/")
    preview.add_argument("job", metavar="JOB", help="the job to preview (see `list`)")
    preview.add_argument("--as-of", type=_date, help="the last day of data to use (default: yesterday)")
    preview.add_argument("--recipient", help="only this recipient (an owner's name, email or Slack handle)")
    preview.add_argument("--out", type=Path, default=Path("out"), help="the output folder (out)")

    serve = commands.add_parser("serve", parents=[common], help="run every job on its schedule until stopped")
    serve.add_argument(
        "--out", type=Path, default=Path("out"), help="write outputs under OUT/JOB/AS_OF/ (out)"
    )
    serve.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="one line of text, or JSON, per event"
    )

    worker = commands.add_parser(
        "worker", parents=[common], help="render and deliver batches sent over Redis (`executor: celery`)"
    )
    worker.add_argument(
        "--concurrency", type=_positive, help="processes rendering batches at once (default: one per core)"
    )
    worker.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="one line of text, or JSON, per event"
    )

    history = commands.add_parser("history", parents=[common], help="recent runs and deliveries")
    history.add_argument("job", nargs="?", metavar="JOB", help="only this job")
    history.add_argument("--limit", type=_positive, default=20, help="runs to show (20)")
    history.add_argument(
        "--status", choices=["running", "ok", "failed", "missed"], help="only runs that ended so"
    )
    history.add_argument("--json", action="store_true", help="print runs and deliveries as JSON")

    alerts = commands.add_parser("alerts", parents=[common], help="firing, pending and silenced alerts")
    alerts.add_argument("job", nargs="?", metavar="JOB", help="only this job")
    silence = commands.add_parser("silence", parents=[common], help="hold a rule's alerts back for a while")
    silence.add_argument("rule", metavar="RULE", help="the rule to silence")
    silence.add_argument("entity", nargs="?", metavar="ENTITY", help="only this entity (its id or name)")
    silence.add_argument("--for", dest="span", required=True, help="how long, e.g. 2d, 12h, 30m, 1w")
    silence.add_argument("--reason", required=True, help="why, for whoever wonders later")
    commands.add_parser("silences", parents=[common], help="silences in force")
    unsilence = commands.add_parser("unsilence", parents=[common], help="end a silence early")
    unsilence.add_argument("id", type=_positive, metavar="ID", help="the silence's number (see `silences`)")

    backfill = commands.add_parser("backfill", parents=[common], help="render past periods of a job")
    backfill.add_argument("job", metavar="JOB", help="the job (see `list`)")
    backfill.add_argument("--from", dest="start", type=_date, required=True, help="first as-of date")
    backfill.add_argument("--to", dest="end", type=_date, required=True, help="last as-of date")
    backfill.add_argument("--deliver", action="store_true", help="send for real (default: the outbox)")
    backfill.add_argument("--out", type=Path, default=Path("out"), help="the output folder (out)")

    web = commands.add_parser(
        "web", parents=[common], help="the archive: pages and /api/v1 (needs HERALD_WEB_SECRET)"
    )
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument("--port", type=_positive, default=8080, help="port to listen on (8080)")
    web.add_argument("--out", type=Path, default=Path("out"), help="the output folder runs write to (out)")
    credential = web.add_mutually_exclusive_group()
    credential.add_argument(
        "--link", metavar="ADDRESS", help="print a personal sign-in link for ADDRESS and exit"
    )
    credential.add_argument("--token", metavar="ADDRESS", help="print an API token for ADDRESS and exit")
    web.add_argument("--days", type=_positive, help="how long --link or --token lasts (config `web:`)")
    prune = commands.add_parser(
        "prune", parents=[common], help="delete output files older than archive.keep_days"
    )
    prune.add_argument("--out", type=Path, default=Path("out"), help="the output folder runs write to (out)")

    demo = commands.add_parser("demo-data", parents=[common], help="build the embedded demo warehouse")
    demo.add_argument("--projects", type=_positive, default=400, help="number of projects (400)")
    demo.add_argument("--days", type=_positive, default=120, help="days of history (120)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    demo.add_argument("--out", type=Path, default=Path("data/demo.duckdb"), help="the DuckDB file to write")
    return main


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a reader that went away is caught below
        return code
    except BrokenPipeError:
        # `run.py ... | head -1`: the reader has what it wanted; nothing is wrong, nothing to say.
        _stdout_to_devnull()
        return 141  # what a shell reports for a writer stopped by SIGPIPE


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so Python's own flush at exit does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests): nothing to flush
        pass


def _prog() -> str:
    return "herald" if Path(sys.argv[0]).name == "herald" else "run.py"


def _main(argv: list[str] | None) -> int:
    cli = parser(_prog())
    try:
        args = cli.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (exit 2, message printed)
        return exc.code if isinstance(exc.code, int) else 2
    if args.verbose and args.quiet:
        print(f"{cli.prog}: error: -v and -q ask for opposite things; pass one of them", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    from reports import commands  # after parsing, so `--help` stays fast
    from reports.logs import guard

    for handler in logging.getLogger().handlers:
        guard(handler)
    talk = 1 if args.verbose else -1 if args.quiet else 0

    try:
        if args.command == "validate":
            return commands.validate(args.config, args.check_sources)
        if args.command == "schema":
            return commands.schema(args.markdown)
        if args.command == "list":
            return commands.list_jobs(args.config, as_json=args.json)
        if args.command == "run":
            if not args.jobs and not args.all:
                raise UsageError("name the jobs to run, or pass --all", "see `python run.py list`")
            if args.jobs and args.all:
                named = f"job ({args.jobs[0]})" if len(args.jobs) == 1 else f"jobs ({', '.join(args.jobs)})"
                raise UsageError(
                    f"both a {named} and --all were given", "name the jobs to run, or pass --all, not both"
                )
            return commands.run(
                args.config,
                args.jobs,
                args.as_of,
                args.json,
                args.out,
                args.dry_run,
                resend=args.resend,
                retry_failed=args.retry_failed,
                talk=talk,
                workers=args.workers,
            )
        if args.command == "preview":
            return commands.preview(args.config, args.job, args.as_of, args.recipient, args.out, talk)
        if args.command == "serve":
            from reports.scheduler.serve import serve

            return serve(args.config, args.out, args.log_format, args.verbose)
        if args.command == "worker":
            from reports.pipeline.workers import serve_worker

            return serve_worker(args.config, args.concurrency, args.log_format, args.verbose)
        if args.command == "history":
            return commands.history(args.config, args.job, args.limit, args.status, args.json)
        if args.command in ("alerts", "silence", "silences", "unsilence"):
            from reports.alerts import commands as alert_commands

            if args.command == "alerts":
                return alert_commands.alerts(args.config, args.job)
            if args.command == "silence":
                return alert_commands.silence(args.config, args.rule, args.entity, args.span, args.reason)
            if args.command == "silences":
                return alert_commands.silences(args.config)
            return alert_commands.unsilence(args.config, args.id)
        if args.command == "backfill":
            return commands.backfill(
                args.config, args.job, args.start, args.end, args.out, args.deliver, talk
            )
        if args.command == "web":
            from reports.web import commands as web_commands

            if args.link or args.token:
                kind = "link" if args.link else "token"
                return web_commands.credential(args.config, args.link or args.token, kind, args.days)
            return web_commands.web(args.config, args.out, args.host, args.port, args.verbose)
        if args.command == "prune":
            from reports.web import commands as web_commands

            return web_commands.prune(args.config, args.out)
        if args.command == "demo-data":
            try:
                return commands.demo_data(args.out, args.projects, args.days, args.seed)
            except ValueError as exc:
                raise UsageError(str(exc), "pass larger --projects or --days") from None
    except BrokenPipeError:
        raise  # not a fault: main() ends quietly
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except HeraldError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("herald: stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        # A fault in Herald itself, not the user's: one line, and how to see the whole story.
        print(
            f"herald: internal error: {type(exc).__name__}: {exc} (run again with -v for the traceback)",
            file=sys.stderr,
        )
        return 1
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
