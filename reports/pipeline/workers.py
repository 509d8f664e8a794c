"""Celery workers (`executor: celery`): a scoped job's batches rendered and delivered by
`run.py worker` processes on any machine, over Redis.

The process that computed the run sends each batch as a task carrying what a worker needs: the
batch's recipients, the run narrowed to their entities, where to write, whether to send for real.
A worker loads the same config.yaml, opens the same store, renders with templates it keeps warm
from batch to batch, and records and sends each delivery as the local path does (a batch of
more than a few reports goes out as chunks that only render; the sending process then sends its
owner's one message, once every chunk is on the shared disk). A task is
acknowledged only when done, so the batch of a worker that dies goes to another: back in the queue
at once when one process of its pool died, after `celery.task_timeout` and a little more when the
whole worker did. The delivery log keeps a batch done twice from sending twice: what its first try sent is
skipped, what it left pending is sent once. Tasks and results are pickled, so the Redis must be
reachable by Herald's own machines alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import jinja2
from celery import Celery, Task
from celery import exceptions as celery_errors
from celery.result import AsyncResult
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from notifiers import Message, Notifier
from reports.config.models import HeraldConfig
from reports.cores import usable_cores
from reports.errors import HeraldError, UsageError
from reports.logs import remember
from reports.pipeline.compute import JobRun
from reports.pipeline.deliver import Interrupted, channels_for
from reports.pipeline.fanout import Batch, Chunks, Fanout, render_batch, run_batch
from reports.report.model import Recipient
from reports.store import Store

log = logging.getLogger(__name__)
TASK = "herald.render_batch"
IN_FLIGHT = 64  # batches sent ahead of their results: enough for many workers; all of them wait out a stop
POLL = 0.5  # seconds between looks at `stop` while results are awaited
TRIES = 3  # a batch whose worker dies this many times (out of memory?) is given up, not sent round forever


@dataclass
class Order:
    """One batch as a worker receives it."""

    run: JobRun  # narrowed to the batch's entities
    recipients: list[Recipient]
    folder: Path
    outbox: Path
    run_id: int
    resend: bool
    dry_run: bool
    now: datetime | None
    config: str  # the digest of the config the run was computed with
    sends: bool = True  # False: a chunk of a large batch, whose message the parent sends


def digest(config: HeraldConfig) -> str:
    """A config's fingerprint: a worker whose config.yaml (or environment) differs says so."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def broker_name(url: str) -> str:
    """A Redis address as messages show it: host, port and database, never a password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def celery_app(config: HeraldConfig) -> Celery:
    """Herald's Celery app for `config`: the queue, pickled batches, and a batch of a dead worker
    handed to another only after the longest a batch may take."""
    settings = config.celery
    backend = settings.result_backend or settings.broker
    for url in (settings.broker, backend):
        remember(urlsplit(url).password)
    limit = settings.task_timeout.total_seconds()
    hidden = visibility_timeout(config)
    app = Celery("herald", broker=settings.broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="pickle",
        result_serializer="pickle",
        accept_content=["pickle"],
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=limit,
        worker_prefetch_multiplier=1,
        # Unacknowledged batches return to the queue once older than this; a sweep looks for them
        # every tenth of it, so a dead worker's batch waits little past it.
        broker_transport_options={
            "visibility_timeout": hidden,
            "unacked_restore_interval": max(1, min(60, int(hidden / 10))),
            "unacked_restore_throttle": 1,
        },
        result_expires=max(86400, int(hidden * 2)),
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(_render)
    return app


def visibility_timeout(config: HeraldConfig) -> float:
    """Seconds a batch may stay unacknowledged before Redis gives it to another worker: longer
    than the longest batch, so a live worker's batch is never done twice."""
    limit = config.celery.task_timeout.total_seconds()
    return limit + max(10.0, limit / 10)


# The parent: send batches, collect what they did --------------------------------------------------


def on_workers(
    work: Fanout,
    groups: list[list[Recipient]],
    tell: Callable[[Batch], None],
    stop: threading.Event | None,
    parent: tuple[jinja2.Environment, dict[str, Notifier], Store],
) -> Iterator[Batch]:
    """Each batch's result as it arrives from the workers; a stop sends no more and waits for
    the batches already sent. A large batch goes out in chunks (see `Chunks`), and its owner's
    message is sent from here once every chunk is written to the shared out/."""
    app = celery_app(work.config)
    where = broker_name(work.config.celery.broker)
    patience = visibility_timeout(work.config) + work.config.celery.task_timeout.total_seconds() + 60
    fingerprint = digest(work.config)
    chunks = Chunks(work, groups, parent)
    waiting = deque(chunks.tasks())
    running: dict[str, tuple[AsyncResult, int, list[Recipient]]] = {}
    arrived: deque[AsyncResult] = deque()
    stopped = False
    try:
        with _broker(where):
            _look_for_workers(app, work.config)
        heard = time.monotonic()
        while waiting or running:
            while waiting and len(running) < IN_FLIGHT:
                if stop is not None and stop.is_set():  # finish what was sent, send no more
                    stopped = True
                    waiting.clear()
                    break
                index, group, sends = waiting.popleft()
                with _broker(where):
                    result = app.send_task(TASK, (order_for(work, group, fingerprint, sends),))
                    result.then(arrived.append)
                running[result.id] = (result, index, group)
            if not running:
                break
            oldest, _, _ = next(iter(running.values()))
            # Waits on the oldest; any other batch that finishes meanwhile arrives too.
            with _broker(where), contextlib.suppress(TimeoutError, celery_errors.TimeoutError):
                oldest.get(timeout=POLL, propagate=False)
            while arrived:
                result = arrived.popleft()
                _, index, group = running.pop(result.id)
                batch = _outcome(result, group)
                with _broker(where):
                    result.forget()
                heard = time.monotonic()
                tell(batch)
                whole = chunks.arrived(index, batch)
                if whole is not None:
                    yield whole
            if time.monotonic() - heard > patience:
                with contextlib.suppress(KombuError, RedisError, OSError):
                    app.control.revoke(list(running))  # a worker that starts later does not take them up
                raise HeraldError(
                    f"no Celery worker finished a batch of job {work.run.job} in {patience / 60:.0f} minutes "
                    f"({len(running)} batches were waiting on {where}, queue {work.config.celery.queue})",
                    "start `run.py worker` on a machine that reaches the broker and shares out/; run the "
                    "job again: nothing already sent is sent twice",
                )
        if stopped:
            raise Interrupted
    finally:
        app.close()


@contextlib.contextmanager
def _broker(where: str) -> Iterator[None]:
    """Redis down or out of reach, said plainly (its address without the password). Celery's
    result consumer gives up reconnecting with a RuntimeError."""
    try:
        yield
    except (KombuError, RedisError, OSError, RuntimeError) as exc:
        raise HeraldError(
            f"the Celery broker {where} cannot be reached: {' '.join(str(exc).split())}",
            "start Redis there or fix `celery.broker`; run the job again: nothing already sent is sent twice",
        ) from None


def order_for(work: Fanout, group: list[Recipient], fingerprint: str, sends: bool = True) -> Order:
    """A batch (or a chunk of one) as a task: its recipients and the run narrowed to their entities."""
    entities = [e for r in group for e in (r.entities or ())]
    # Absolute, so that every machine writes to the same place (out/ is shared, mounted alike).
    return Order(
        work.run.scoped(entities),
        group,
        work.folder.resolve(),
        work.outbox.resolve(),
        work.run_id,
        work.resend,
        work.dry_run,
        work.now,
        fingerprint,
        sends,
    )


def _outcome(result: AsyncResult, group: list[Recipient]) -> Batch:
    """What a batch did, or why a worker could not do it (its deliveries stay recorded as unsent)."""
    if result.successful():
        return cast(Batch, result.result)
    who = ", ".join(r.label for r in group[:3])
    fault = result.result
    if isinstance(fault, celery_errors.TimeLimitExceeded):
        why = "it took longer than `celery.task_timeout` allows: raise it"
    elif result.state == "REVOKED":
        why = "it was cancelled"
    else:
        why = f"the worker failed: {type(fault).__name__}: {fault}"
    return Batch(reports=len(group), error=f"{who}: {why}")


def _look_for_workers(app: Celery, config: HeraldConfig) -> None:
    """Warn (the batches still wait) when no worker answers: a forgotten `run.py worker`."""
    if not app.control.ping(timeout=1.0, limit=1):
        log.warning(
            "no Celery worker answered on %s: batches wait in queue %s until `run.py worker` starts",
            broker_name(config.celery.broker),
            config.celery.queue,
        )


# The worker: render and deliver one batch ---------------------------------------------------------


class _Here:
    """A worker process's own config, templates, store and channels, made on its first batch and
    kept for the next ones."""

    def __init__(self, path: Path, config: HeraldConfig) -> None:
        self.path, self.config, self.digest = path, config, digest(config)
        self.env: jinja2.Environment | None = None
        self.store: Store | None = None
        self.channels: dict[str, Notifier] = {}
        self.channels_for: tuple[Path, bool] | None = None

    def ready(self, wanted: str) -> bool:
        """Whether this worker runs the config a batch was made with; config.yaml is read again
        when it does not (it was changed since the worker started)."""
        if wanted != self.digest:
            from reports.config.load import load_config

            self._close()
            self.config = load_config(self.path)
            self.digest, self.env, self.store = digest(self.config), None, None
        return wanted == self.digest

    def templates(self) -> jinja2.Environment:
        if self.env is None:
            from reports.render.templates import environment

            self.env = environment(self.config.templates_dir)
        return self.env

    def opened_store(self) -> Store:
        if self.store is None:
            self.store = Store(self.config.path(self.config.store))
        return self.store

    def channels_to(self, outbox: Path, dry_run: bool) -> dict[str, Notifier]:
        """The channels of one run: a run's outbox is its own, and a dry run sends nothing."""
        if self.channels_for != (outbox, dry_run):
            self._close()
            self.channels = channels_for(self.config, outbox, dry_run)
            self.channels_for = (outbox, dry_run)
        return self.channels

    def _close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.channels, self.channels_for = {}, None


_HERE: _Here | None = None  # set in the worker before its pool is forked


def prepare_worker(config_path: Path, config: HeraldConfig) -> None:
    """Set up this process (before its pool is forked) to take batches made with `config`."""
    global _HERE
    _HERE = _Here(config_path.resolve(), config)


def _render(task: Task, order: Order) -> Batch:
    """The task."""
    return render_order(order, _tries(task))


def render_order(order: Order, tries: int = 1) -> Batch:
    """One batch rendered to the shared out/, recorded and sent; `tries` counts the workers that
    took it, dead ones included."""
    assert _HERE is not None, "a batch reached a process that is not `run.py worker`"
    count = len(order.recipients)
    who = f"job {order.run.job}, run {order.run_id}: batch of {count} report{'s' if count != 1 else ''}"
    if tries > TRIES:
        return Batch(
            reports=len(order.recipients),
            error=f"{', '.join(r.label for r in order.recipients[:3])}: the workers rendering it died "
            f"{tries - 1} times (out of memory?); see their machines' system logs",
        )
    if not _HERE.ready(order.config):
        return Batch(
            reports=len(order.recipients),
            error=f"the worker on {socket.gethostname()} reads another config.yaml (or environment) than "
            "the run's: deploy the same file and secrets to every machine, then restart its workers",
        )
    if tries > 1:
        log.warning("%s: taken over from a worker that died (try %d)", who, tries)
    started = time.monotonic()
    work = Fanout(
        _HERE.config,
        order.run,
        order.folder,
        order.outbox,
        order.run_id,
        order.resend,
        order.dry_run,
        order.now,
    )
    if not order.sends:  # a chunk: rendered to the shared out/, its owner's message sent by the parent
        batch = render_batch(work, order.recipients, _HERE.templates(), light=True)
    else:
        channels = _HERE.channels_to(order.outbox, order.dry_run)
        # a batch done twice (its first worker died) finds what it sent held by `add_deliveries`
        batch = run_batch(work, order.recipients, _HERE.templates(), channels, _HERE.opened_store())
    log.info(
        "%s done in %.1f s%s",
        who,
        time.monotonic() - started,
        f" ({batch.error})" if batch.error else "",
        extra={"event": "batch", "job": order.run.job, "run": order.run_id},
    )
    return _lightened(batch)


def _tries(task: Task) -> int:
    """How many times this batch was started, counted in Redis (a redelivered task carries no count)."""
    if not task.request.delivery_info.get("redelivered"):
        return 1
    key = f"herald-tries:{task.request.id}"
    client = task.backend.client
    tries = int(client.incr(key))
    client.expire(key, 86400)
    return tries + 1


def _lightened(batch: Batch) -> Batch:
    """What the parent needs of each delivery (channel, recipient, status), not the message's files."""
    outcomes = [
        replace(o, delivery=replace(o.delivery, message=Message(o.delivery.message.subject, "")))
        for o in batch.outcomes
    ]
    return replace(batch, outcomes=outcomes)


# `run.py worker` ----------------------------------------------------------------------------------


def serve_worker(
    config_path: Path, concurrency: int | None = None, log_format: str = "text", verbose: bool = False
) -> int:
    """Serve batches until stopped: SIGTERM lets the batches in hand finish first."""
    from celery.signals import setup_logging

    from reports.config.load import load_config
    from reports.scheduler.serve import configure_logging

    config = load_config(config_path)
    if config.executor != "celery":
        raise UsageError(
            f"{config_path} sets `executor: local`, so no batch is sent to workers",
            "set `executor: celery` and `celery: {broker: redis://...}` in config.yaml on every machine",
        )
    configure_logging(log_format, verbose)
    setup_logging.connect(_keep_logging, weak=False)  # Herald's handlers, which mask secrets
    if not verbose:
        for name in ("celery", "kombu"):
            logging.getLogger(name).setLevel(logging.WARNING)
    import weasyprint  # noqa: F401 — loaded once here, inherited warm by every process of the pool

    prepare_worker(config_path, config)
    app = celery_app(config)
    cores = usable_cores()
    try:
        worker = app.Worker(
            hostname=f"herald-{os.getpid()}@{socket.gethostname()}",
            concurrency=concurrency or cores,
            pool_cls="prefork",
            queues=[config.celery.queue],
            loglevel="INFO" if verbose else "WARNING",
            quiet=True,
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
        )
    except celery_errors.SecurityError:
        raise HeraldError(
            "a worker refuses to run as root: the batches it takes are pickled",
            "run it as an unprivileged user (systemd: User=herald), or set C_FORCE_ROOT=1 on a machine "
            "that runs nothing else",
        ) from None
    log.info(
        "worker on %s: %d processes serving queue %s of %s",
        socket.gethostname(),
        concurrency or cores,
        config.celery.queue,
        broker_name(config.celery.broker),
        extra={"event": "worker"},
    )
    worker.start()
    return worker.exitcode or 0


def _keep_logging(**_: Any) -> None:
    """Celery configures no logging of its own when this is connected."""
