"""Fan-out: a run's scoped reports rendered and delivered in batches, in this process or by a pool
of warm worker processes.

A batch is the reports that go out together: one owner's report, or every entity an owner looks
after when the job is scoped per entity (they get one message). Each batch is narrowed, built,
rendered to disk, recorded and sent on its own, so a run of thousands of reports holds only the
batch in hand in memory, and a crash loses at most the batches in flight: their deliveries are
recorded before they are tried, like every other. Workers are forked from the process that
computed the run: they start with its data, WeasyPrint and the templates already loaded, and keep
their chart cache and connections from one batch to the next. A pool renders a large batch (an
owner of hundreds of projects) in chunks spread over its workers, and the parent sends the
owner's one message once the last chunk is on disk.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import jinja2

from notifiers import Notifier
from reports.config.models import HeraldConfig
from reports.cores import usable_cores
from reports.errors import HeraldError
from reports.pipeline.compute import JobRun, Progress
from reports.pipeline.deliver import Interrupted, Outcome, channels_for, deliver, filing, plan, record
from reports.render.outputs import Rendered, render_for
from reports.report.model import Recipient
from reports.store import Store

log = logging.getLogger(__name__)
BATCHES_IN_FLIGHT = 2  # per worker: enough to keep each busy, few enough to stop soon when asked
CHUNK = 5  # reports of one batch a worker renders at a time, in a pool
POOL_FROM = 24  # `workers: auto` starts a pool for runs with at least this many reports
LOG_EVERY = 10.0  # seconds between progress lines in a log


@dataclass
class Fanout:
    """What every batch of one run shares. A pool's workers inherit it when they are forked."""

    config: HeraldConfig
    run: JobRun
    folder: Path
    outbox: Path
    run_id: int
    resend: bool = False
    dry_run: bool = False
    now: datetime | None = None


@dataclass
class Batch:
    """What one batch did: its reports (without their data, which stays in the worker), how each
    delivery ended, and why it could not be rendered, if it could not."""

    rendered: list[Rendered] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None
    reports: int = 0


def batches(recipients: list[Recipient], per_entity: bool) -> list[list[Recipient]]:
    """Recipients whose reports go out together: per entity, every entity reached at a shared
    address on any channel (one owner's, who gets one message per channel); otherwise each
    recipient alone. Two batches never send to the same address, so no message is recorded
    twice under one name."""
    if not per_entity:
        return [[r] for r in recipients]
    batch_of: dict[str, int] = {}  # an address → the batch reaching it
    found: list[list[Recipient]] = []
    for recipient in recipients:
        reach = [f"{channel}:{a}" for channel in ("email", "slack") if (a := recipient.contact(channel))]
        joined = sorted({batch_of[a] for a in reach if a in batch_of})
        if not joined:
            found.append([])
            joined = [len(found) - 1]
        into = joined[0]
        moved = [recipient]
        for other in joined[1:]:  # this entity links two owners' batches: they become one
            moved += found[other]
            found[into] += found[other]
            found[other] = []
        found[into].append(recipient)
        for member in moved:  # only addresses new to the batch: linear in the recipients
            for channel in ("email", "slack"):
                if address := member.contact(channel):
                    batch_of[f"{channel}:{address}"] = into
    return [batch for batch in found if batch]


def worker_count(config: HeraldConfig, reports: int) -> int:
    """Processes for a run of `reports` reports: 0 renders in this process."""
    if config.workers == "auto":
        cores = usable_cores()
        return cores if reports >= POOL_FROM and cores > 1 else 0
    return min(config.workers, max(reports, 1)) if config.workers > 1 else config.workers


def run_batch(
    work: Fanout,
    recipients: list[Recipient],
    env: jinja2.Environment,
    channels: dict[str, Notifier],
    store: Store,
) -> Batch:
    """Render one batch's reports to disk, record their deliveries, then send them."""
    done = render_batch(work, recipients, env, light=False)
    if done.error is None:
        send_batch(work, done, env, channels, store, recipients)
    done.rendered = [_light(r) for r in done.rendered]
    return done


def render_batch(work: Fanout, recipients: list[Recipient], env: jinja2.Environment, light: bool) -> Batch:
    """Render these reports to disk; nothing is recorded or sent."""
    done = Batch(reports=len(recipients))
    entities = [e for r in recipients for e in (r.entities or ())]
    scoped = work.run.scoped(entities)  # the batch's rows, looked up once for all its reports
    with _said(done, work, recipients):
        done.rendered = render_for(work.config, scoped, recipients, work.folder, env, work.now)
    if light:
        done.rendered = [_light(r) for r in done.rendered]
    return done


def send_batch(
    work: Fanout,
    done: Batch,
    env: jinja2.Environment,
    channels: dict[str, Notifier],
    store: Store,
    recipients: list[Recipient],
) -> None:
    """Plan, record, then send the deliveries of a batch's rendered reports (into `done`)."""
    with _said(done, work, recipients):
        planned = plan(work.config, done.rendered, env)
        job, as_of = work.run.job, work.run.as_of.isoformat()
        pending, done.outcomes = record(
            planned, store, work.run_id, job, as_of, work.resend, filing(channels)
        )
        done.outcomes += deliver(pending, channels, store, work.config.delivery)


@contextmanager
def _said(done: Batch, work: Fanout, recipients: list[Recipient]) -> Iterator[None]:
    """A batch's failure as one line in `done.error`, naming whose reports it was."""
    try:
        yield
    except HeraldError as exc:
        done.error = f"{', '.join(r.label for r in recipients[:3])}: {exc}"
    except OSError as exc:
        done.error = f"cannot write {exc.filename or work.folder}: {exc.strerror or exc}"


def _light(rendered: Rendered) -> Rendered:
    """A rendered report as the parent keeps it: where its files are and who it was for, not the
    data and messages it was made from (memory stays flat in the number of reports)."""
    report = replace(rendered.report, trends=[], charts={}, daily=None, rollups=[], movers=None)
    return replace(rendered, report=report, email=None, slack={})


def fan_out(
    work: Fanout,
    groups: list[list[Recipient]],
    *,
    workers: int,
    env: jinja2.Environment,
    channels: dict[str, Notifier],
    store: Store,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Batch]:
    """Each batch's result as it finishes: in this process when `workers` is 0, else in a pool."""
    total = sum(len(g) for g in groups)
    tell = _Teller(work.run.job, total, progress)
    if work.config.executor == "celery":
        from reports.pipeline.workers import on_workers  # Celery is loaded only when it is used

        yield from on_workers(work, groups, tell, stop, (env, channels, store))
        return
    with _set_aside():
        if workers == 0 or len(groups) < 2:
            for group in groups:
                if stop is not None and stop.is_set():
                    raise Interrupted
                batch = run_batch(work, group, env, channels, store)
                tell(batch)
                yield batch
            return
        yield from _pooled(work, groups, workers, tell, stop, (env, channels, store))


@contextmanager
def _set_aside() -> Iterator[None]:
    """Everything alive before the fan-out (the run's frames, config, templates) kept out of the
    garbage collector's way until it ends. Rendering makes many short-lived objects, and each
    collection walked every object of the run again: a tenth of a per-project run's time. A
    forked worker then also leaves the pages of those objects shared, not copied."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _Teller:
    """Progress as batches finish: the terminal line, and a log line every few seconds."""

    def __init__(self, job: str, total: int, progress: Progress | None) -> None:
        self.job, self.total, self.progress = job, total, progress
        self.done, self.started, self.logged = 0, time.monotonic(), time.monotonic()

    def __call__(self, batch: Batch) -> None:
        self.done += batch.reports
        if self.progress:
            self.progress("rendering reports", self.done, self.total)
        now = time.monotonic()
        if now - self.logged >= LOG_EVERY or self.done == self.total:
            self.logged = now
            rate = self.done / max(now - self.started, 1e-9) * 60
            log.info(
                "job %s: %d of %d reports rendered (%.0f a minute)",
                self.job,
                self.done,
                self.total,
                rate,
                extra={"event": "progress", "done": self.done, "total": self.total},
            )


# The run a pool's workers serve, set in the parent just before they are forked.
_WORK: Fanout | None = None
_WORKER: dict = {}


def _start_worker() -> None:
    """In a new worker: its own templates, chart cache, store connection and channels. Ctrl-C
    reaches the whole process group; it is the parent's to handle (it lets the batches in flight
    finish). SIGTERM is left as it is: the pool ends its workers with it when one of them dies."""
    from reports.render.templates import environment

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert _WORK is not None
    config = _WORK.config
    _WORKER["env"] = environment(config.templates_dir)
    _WORKER["store"] = Store(config.path(config.store))
    _WORKER["channels"] = channels_for(config, _WORK.outbox, _WORK.dry_run)


def _in_worker(group: list[Recipient], send: bool = True) -> Batch:
    assert _WORK is not None
    if not send:  # a chunk of a large batch: the parent sends once every chunk is rendered
        return render_batch(_WORK, group, _WORKER["env"], light=True)
    return run_batch(_WORK, group, _WORKER["env"], _WORKER["channels"], _WORKER["store"])


class Chunks:
    """A run's batches as tasks for workers: a batch of more than CHUNK reports is rendered in
    chunks, so that one owner of hundreds of projects keeps every worker busy to the end rather
    than one worker for minutes, and their message goes out (from the process that hands out
    the tasks, with its `env`, `channels` and `store`) once the last chunk is written. A smaller
    batch is rendered and sent in one task."""

    def __init__(
        self,
        work: Fanout,
        groups: list[list[Recipient]],
        parent: tuple[jinja2.Environment, dict[str, Notifier], Store],
    ) -> None:
        self.work, self.groups, self.parent = work, groups, parent
        self.left = {i: -(-len(g) // CHUNK) for i, g in enumerate(groups) if len(g) > CHUNK}
        self.gathered = {i: Batch(reports=len(groups[i])) for i in self.left}

    def tasks(self) -> Iterator[tuple[int, list[Recipient], bool]]:
        """(batch, the task's recipients, whether the task sends too), in the batches' order."""
        for index, group in enumerate(self.groups):
            if index not in self.left:
                yield index, group, True
            else:
                for start in range(0, len(group), CHUNK):
                    yield index, group[start : start + CHUNK], False

    def arrived(self, index: int, done: Batch) -> Batch | None:
        """A task's result: the whole batch once it is complete (sent from here if nothing in it
        failed), None while chunks of it are still out."""
        if index not in self.left:
            return done
        whole = self.gathered[index]
        whole.rendered += done.rendered
        whole.error = whole.error or done.error
        self.left[index] -= 1
        if self.left[index]:
            return None
        del self.left[index], self.gathered[index]
        if whole.error is None:
            send_batch(self.work, whole, *self.parent, self.groups[index])
        return whole


def _pooled(
    work: Fanout,
    groups: list[list[Recipient]],
    workers: int,
    tell: Callable[[Batch], None],
    stop: threading.Event | None,
    parent: tuple[jinja2.Environment, dict[str, Notifier], Store],
) -> Iterator[Batch]:
    global _WORK
    import weasyprint  # noqa: F401 — loaded once here, inherited warm by every worker

    _WORK = work
    chunks = Chunks(work, groups, parent)
    waiting = deque(chunks.tasks())
    pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), initializer=_start_worker)
    try:
        running: deque[tuple[int, Future[Batch]]] = deque()
        stopped = False
        while waiting or running:
            while waiting and len(running) < workers * BATCHES_IN_FLIGHT:
                if stop is not None and stop.is_set():  # finish what is in flight, start no more
                    stopped = True
                    waiting.clear()
                    break
                index, group, sends = waiting.popleft()
                running.append((index, pool.submit(_in_worker, group, sends)))
            if not running:
                break
            index, future = running.popleft()
            try:
                batch = future.result()
            except BrokenProcessPool:  # killed (out of memory?): what it held stays recorded as unsent
                raise HeraldError(
                    "a worker rendering the reports died before it finished",
                    "see the system log (out of memory?); run the job again: nothing already sent is sent twice",
                ) from None
            tell(batch)
            whole = chunks.arrived(index, batch)
            if whole is not None:
                yield whole
        if stopped:
            raise Interrupted
    finally:
        _WORK = None
        pool.shutdown(wait=True, cancel_futures=True)
