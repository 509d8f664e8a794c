"""A real Redis on loopback for the Celery tests, and `run.py worker` processes beside it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def redis_server(folder: Path, password: str) -> Iterator[str]:
    """A throwaway Redis that keeps nothing on disk, asking for `password`; yields its address
    with the password left for the environment to fill in (`${REDIS_PASSWORD}`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("Redis is not installed: run `make test`, which installs it")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(folder), "--requirepass", password]
    with open(folder / "redis.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, server, folder / "redis.log")
        yield f"redis://:${{REDIS_PASSWORD}}@127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def _wait_for(port: int, server: subprocess.Popen, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server stopped: {log.read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on port {port} within 10 s")


class Worker:
    """`run.py worker` in its own process group, so that a kill takes its whole pool with it."""

    def __init__(self, config: Path, log: Path, env: dict[str, str], concurrency: int = 1) -> None:
        self.log = log
        command = [sys.executable, str(ROOT / "run.py"), "worker", "--config", str(config)]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [*command, "--concurrency", str(concurrency)],
                cwd=config.parent,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL to the worker and every process of its pool, as a machine that dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")
