"""`run.py serve`: run every job on its schedule until stopped.

One loop: resume what a stopped or crashed Herald left unfinished, claim each due fire time in
the store (so two processes never run one twice), run it, then sleep until the next fire time.
Each run is known by its nominal fire time; its as-of date derives from that, not from when it
happened to start. A first SIGTERM or SIGINT lets the delivery in flight finish, then stops; the
rest stay recorded and the next start sends them. A second signal stops at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from reports.archive.prune import prune_daily
from reports.config.load import load_config
from reports.config.models import HeraldConfig
from reports.errors import HeraldError
from reports.logs import guard
from reports.pipeline.compute import late_feeds
from reports.pipeline.deliver import Interrupted, channels_for, unsent
from reports.pipeline.execute import JobOutcome, execute, finish, send_recorded
from reports.render.templates import environment
from reports.scheduler.signals import StopOnSignal
from reports.scheduler.timing import as_of_for, due, sleep_until
from reports.sources.pool import Sources
from reports.store import RunRow, Store, holder_is_dead, now_utc, process_id

log = logging.getLogger("herald.serve")
LONGEST_SLEEP = timedelta(seconds=30)  # a changed config file is noticed this late at most


class Server:
    def __init__(
        self,
        config_path: Path,
        out: Path,
        lease: timedelta = timedelta(seconds=60),
        now: Callable[[], datetime] = now_utc,
        sleep: Callable[[datetime, threading.Event, Callable[[], datetime]], bool] = sleep_until,
    ) -> None:
        self.config_path = config_path
        self.out = out
        self.lease = lease
        self.now = now
        self.sleep = sleep
        self.owner = process_id()
        self.stop = threading.Event()  # finish the delivery in flight, then stop
        self.wake = threading.Event()  # cut a sleep short
        self._config: HeraldConfig | None = None
        self._config_stamp: float | None = None

    # The loop ---------------------------------------------------------------------------------

    def serve(self) -> int:
        self._handle_signals()
        config = self.config()
        log.info("serving %d jobs", len(config.reports), extra={"event": "serve", "owner": self.owner})
        while not self.stop.is_set():
            try:
                self.tick()
            except Interrupted:
                break
            except HeraldError as exc:  # the store or the disk: say so, and try again later
                log.error("cannot work: %s", exc, extra={"event": "error"})
            # Cleared before the stop is looked at: a signal arriving from here on sets `wake`
            # again and cuts the sleep short, rather than waiting out LONGEST_SLEEP.
            self.wake.clear()
            if self.stop.is_set():
                break
            config = self.config()
            wake_at = min(
                [self.now() + LONGEST_SLEEP]
                + [r.schedule.trigger(config.timezone).after(self.now()) for r in config.reports.values()]
            )
            self.sleep(wake_at, self.wake, self.now)
        log.info("stopped", extra={"event": "stopped"})
        return 0

    def tick(self) -> None:
        """One pass: resume or fail unfinished runs, record missed fire times, run what is due."""
        config = self.config()
        store = Store(config.path(config.store))
        self._unfinished(config, store)
        prune_daily(config, store, self.out, self.now())  # `archive.keep_days`: once a day
        for job, report in config.reports.items():
            schedule = report.schedule
            trigger = schedule.trigger(config.timezone)
            zone = schedule.timezone or config.timezone
            now = self.now()
            found = due(trigger, store.last_fire(job), now, schedule.grace, schedule.coalesce)
            for fire in found.missed:
                store.record_missed(job, fire, as_of_for(fire, zone, schedule.as_of_days_before).isoformat())
                log.warning(
                    "missed %s at %s",
                    job,
                    _utc(fire),
                    extra={"event": "run_missed", "job": job, "scheduled_for": _utc(fire)},
                )
            for fire in found.run:
                as_of = as_of_for(fire, zone, schedule.as_of_days_before)
                claimed = store.claim(job, fire, as_of.isoformat(), self.owner, self.lease)
                if claimed is not None:
                    self._run(config, store, claimed)
                if self.stop.is_set():
                    raise Interrupted

    # One run ----------------------------------------------------------------------------------

    def _run(self, config: HeraldConfig, store: Store, run: RunRow) -> None:
        as_of = date.fromisoformat(run.as_of)
        context = {"job": run.job, "scheduled_for": run.scheduled_for, "as_of": run.as_of, "run": run.id}
        resumed = run.planned == 1
        log.info(
            "run %s %s for %s%s",
            "resumed" if resumed else "started",
            run.job,
            run.as_of,
            f" (scheduled for {run.scheduled_for})" if run.scheduled_for else "",
            extra={"event": "run_resumed" if resumed else "run_started", **context},
        )
        beat = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(store, run.id, beat), daemon=True)
        heart.start()
        try:
            outcome = self._work(config, store, run, as_of)
        except Interrupted:
            store.release(run.id, self.owner)
            log.info(
                "stopping: run %s left for the next start", run.id, extra={"event": "run_released", **context}
            )
            raise
        except Exception as exc:  # a fault in Herald itself: this run fails, the scheduler goes on
            log.exception("run %s failed: internal error", run.id, extra={"event": "run_failed", **context})
            try:
                store.finish_run(run.id, "failed", error=f"internal error: {type(exc).__name__}: {exc}")
            except HeraldError as again:
                log.error("run %s could not be recorded as failed: %s", run.id, again, extra=context)
            return
        finally:
            beat.set()
            heart.join()
        status = store.run(run.id).status
        log.info(
            "run finished %s for %s: %s",
            run.job,
            run.as_of,
            status,
            extra={
                "event": "run_finished",
                "status": status,
                "deliveries": len(outcome.deliveries),
                "problems": outcome.problems(),
                **context,
            },
        )

    def _work(self, config: HeraldConfig, store: Store, run: RunRow, as_of: date) -> JobOutcome:
        outbox = self.out / "outbox" / run.job / run.as_of
        if run.planned:  # everything was rendered and recorded: send what has not gone out
            channels = channels_for(config, outbox, dry_run=False)
            try:
                pending = unsent(store, [run.id], ("pending", "retrying"))
                return send_recorded(
                    config, run.job, as_of, run.id, pending, channels=channels, store=store, stop=self.stop
                )
            finally:
                for channel in channels.values():
                    channel.close()
        self._wait_for_data(config, run, as_of)
        sources = Sources(config)
        try:
            return execute(
                config,
                run.job,
                as_of,
                self.out,
                sources=sources,
                env=environment(config.templates_dir),
                store=store,
                run_id=run.id,
                stop=self.stop,
            )
        finally:
            sources.close()

    def _wait_for_data(self, config: HeraldConfig, run: RunRow, as_of: date) -> None:
        """With `wait_for_data`, look again every so often until each feed has the as-of day's
        data or the deadline passes; then the run goes ahead and marks what is still late."""
        wait = config.reports[run.job].wait_for_data
        deadline = _data_deadline(config, run)
        if wait is None or deadline is None:
            return
        context = {"job": run.job, "as_of": run.as_of, "run": run.id}
        while True:
            sources = Sources(config)  # a new connection each time: the load may replace the file
            try:
                late = late_feeds(config, run.job, as_of, sources)
            finally:
                sources.close()
            if not late:
                return
            now = self.now()
            if now >= deadline:
                log.warning(
                    "data still late for %s at the deadline: %s",
                    run.job,
                    ", ".join(late),
                    extra={"event": "data_late", **context},
                )
                return
            again = min(now + wait.every, deadline)
            log.info(
                "waiting for data for %s (%s); looking again at %s",
                run.job,
                ", ".join(late),
                _utc(again),
                extra={"event": "waiting_for_data", **context},
            )
            self.sleep(again, self.wake, self.now)
            if self.stop.is_set():
                raise Interrupted

    def _heartbeat(self, store: Store, run_id: int, done: threading.Event) -> None:
        while not done.wait(self.lease.total_seconds() / 3):
            if not store.renew(run_id, self.owner, self.lease):
                log.warning("lost the lease on run %s", run_id, extra={"event": "lease_lost", "run": run_id})
                return

    def _unfinished(self, config: HeraldConfig, store: Store) -> None:
        """Runs still marked running: past their job's timeout they are failed and the owners told;
        a run whose holder died or let its lease run out is taken over and resumed."""
        for run in store.unfinished():
            report = config.reports.get(run.job)
            timeout = report.schedule.timeout if report else timedelta(hours=1)
            deadline = _data_deadline(config, run)
            if deadline is not None:  # waiting for data is not being stuck
                timeout += deadline - datetime.fromisoformat(run.scheduled_for or run.started_at)
            started = datetime.fromisoformat(run.started_at)
            if self.now() - started > timeout:
                self._fail_stuck(config, store, run, timeout)
                continue
            if run.lease_owner == self.owner or report is None:
                continue
            dead = holder_is_dead(run.lease_owner)
            if run.scheduled_for is None:  # started by hand: nobody resumes it, but a dead one is over
                if dead and store.take_over(run.id, self.owner, self.lease, force=True):
                    store.finish_run(
                        run.id, "failed", error="the process running it stopped before it finished"
                    )
                continue
            if store.take_over(run.id, self.owner, self.lease, force=dead):
                self._run(config, store, store.run(run.id))
            if self.stop.is_set():
                raise Interrupted

    def _fail_stuck(self, config: HeraldConfig, store: Store, run: RunRow, timeout: timedelta) -> None:
        problem = f"run {run.id} was still working after {_span(timeout)}; marked failed"
        if not store.take_over(run.id, self.owner, self.lease, force=True):
            return
        log.error(problem, extra={"event": "run_stuck", "job": run.job, "run": run.id})
        outcome = JobOutcome(run.job, date.fromisoformat(run.as_of), Path(), error=problem)
        channels = channels_for(config, self.out / "outbox" / run.job / run.as_of, dry_run=False)
        try:
            finish(config, outcome, run.id, channels, store)
        finally:
            for channel in channels.values():
                channel.close()

    # Config and signals -----------------------------------------------------------------------

    def config(self) -> HeraldConfig:
        """The config, loaded again when its file changed; a broken edit keeps the last good one."""
        try:
            stamp = self.config_path.stat().st_mtime
        except OSError:
            stamp = None
        if self._config is None or stamp != self._config_stamp:
            try:
                self._config = load_config(self.config_path)
                if self._config_stamp is not None:
                    log.info("config reloaded", extra={"event": "config_reloaded"})
            except HeraldError as exc:
                if self._config is None:
                    raise
                log.error("config not reloaded: %s", exc, extra={"event": "config_invalid"})
            self._config_stamp = stamp
        return self._config

    def _handle_signals(self) -> None:
        StopOnSignal(self.stop, self.wake).install()


def _data_deadline(config: HeraldConfig, run: RunRow) -> datetime | None:
    """Until when a scheduled run waits for its data: `wait_for_data.until` on the day it fired
    (the next day when that time had passed), in the schedule's zone."""
    report = config.reports.get(run.job)
    if report is None or report.wait_for_data is None or run.scheduled_for is None:
        return None
    zone = ZoneInfo(report.schedule.timezone or config.timezone)
    fired = datetime.fromisoformat(run.scheduled_for).astimezone(zone)
    deadline = datetime.combine(fired.date(), report.wait_for_data.until, zone)
    return deadline if deadline >= fired else deadline + timedelta(days=1)


def _utc(moment: datetime) -> str:
    return moment.astimezone(now_utc().tzinfo).isoformat(timespec="seconds")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes} minutes"


class LineFormatter(logging.Formatter):
    """One readable line: time, level, message."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, now_utc().tzinfo).isoformat(timespec="seconds")
        return f"{stamp} {record.levelname.lower():7} {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time, level, message and the event's fields."""

    FIELDS = ("event", "job", "scheduled_for", "as_of", "run", "status", "deliveries", "problems", "owner")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, now_utc().tzinfo).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {name: getattr(record, name) for name in self.FIELDS if hasattr(record, name)}
        return json.dumps(entry, default=str)


def configure_logging(fmt: str, verbose: bool = False) -> None:
    handler = guard(logging.StreamHandler())
    handler.setFormatter(JsonFormatter() if fmt == "json" else LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    if not verbose:  # one line per run and delivery; libraries' chatter only with -v
        for name in ("urllib3", "slack_sdk", "weasyprint", "fontTools"):
            logging.getLogger(name).setLevel(logging.ERROR)


def serve(config_path: Path, out: Path, log_format: str = "text", verbose: bool = False) -> int:
    configure_logging(log_format, verbose)
    return Server(config_path, out).serve()
