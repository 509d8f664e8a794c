"""How `serve` is asked to stop: a first SIGTERM or SIGINT finishes the delivery in flight, a
second one stops at once.

Python runs a signal handler in the main thread, between two of its steps, wherever that thread
happens to be. A handler that took a lock the main thread already holds (a `threading.Event`
being cleared or waited on, a log handler's stream) would wait for itself for ever, and `serve`
would ignore every later signal. And a signal the system hands to another thread reaches the
main thread's handler only once that thread's current call (an SMTP reply, say) returns.

So the handler does nothing. Python writes each signal's number to a pipe the moment it arrives
(`signal.set_wakeup_fd`), and a watcher thread reads it: on the first signal it sets the events
and logs, with locks it can wait for; on the second it ends the process there and then, and
the render workers it started with it (they ignore Ctrl-C, and would otherwise live on, orphaned).
That is as safe as a SIGKILL, which `serve` is built to survive: the store commits each step,
and the next start takes over the run whose holder is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from types import FrameType

log = logging.getLogger("herald.serve")
SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by a signal it was sent


class StopOnSignal:
    def __init__(self, stop: threading.Event, wake: threading.Event) -> None:
        self.stop = stop  # finish the delivery in flight, then stop
        self.wake = wake  # cut a sleep short

    def install(self) -> None:
        """From the main thread, before serving."""
        read, write = os.pipe()
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for signum in SIGNALS:
            signal.signal(signum, _ignore)
        os.register_at_fork(after_in_child=_as_python_starts)
        threading.Thread(target=self._watch, args=(read,), name="herald-signals", daemon=True).start()

    def _watch(self, read: int) -> None:
        signum = self._next(read)
        log.info(
            "%s: finishing the delivery in flight, then stopping",
            signal.Signals(signum).name,
            extra={"event": "stopping"},
        )
        self.stop.set()
        self.wake.set()
        self._next(read)
        log.warning("second signal: stopping now", extra={"event": "killed"})
        for worker in multiprocessing.active_children():
            worker.kill()
        os._exit(EXIT_INTERRUPTED)

    @staticmethod
    def _next(read: int) -> int:
        while True:
            (signum,) = os.read(read, 1)
            if signum in SIGNALS:
                return signum


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Python's half of a signal: nothing. Installing it keeps the process alive (the default
    would end it) and has Python write the signal to the wakeup pipe."""


def _as_python_starts() -> None:
    """In a process forked from `serve` (a pool's worker, a sheet's helper): signals as a new
    Python has them. Its signals are its own, not news for the pipe of the process it came
    from, and a pool ends its workers with SIGTERM."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
