"""How `serve` is asked to stop: a first SIGTERM or SIGINT finishes the delivery in flight, a
second one stops at once.

A Python signal handler runs in the main thread, between two of its steps, wherever that thread
happens to be. If it took a lock the main thread already holds (a `threading.Event` being
cleared or waited on, a log handler's stream) it would wait for itself for ever, and `serve`
would ignore every later signal. So the handler takes none: it counts the signal and writes one
byte to a pipe. A watcher thread reads that byte and does the rest, setting the events and
logging, with locks it can wait for.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger("herald.serve")


class StopNow(SystemExit):
    """A second signal: stop where the main thread is, with the shell's code for an interrupt."""

    def __init__(self) -> None:
        super().__init__(130)


class StopOnSignal:
    def __init__(self, stop: threading.Event, wake: threading.Event) -> None:
        self.stop = stop  # finish the delivery in flight, then stop
        self.wake = wake  # cut a sleep short
        self.received = 0
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def install(self) -> None:
        threading.Thread(target=self._watch, name="herald-signals", daemon=True).start()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received > 1:
            raise StopNow
        os.write(self._write, bytes([signum]))

    def _watch(self) -> None:
        (signum,) = os.read(self._read, 1)
        log.info(
            "%s: finishing the delivery in flight, then stopping",
            signal.Signals(signum).name,
            extra={"event": "stopping"},
        )
        self.stop.set()
        self.wake.set()
