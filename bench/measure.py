"""Timing and memory of child processes, the run's clock, and one-line profiles.

Every figure of `make bench` comes from a child process, so that its peak memory is its own: the
child's resource usage is read with `os.wait4`, which covers the processes it forked and waited
for (Herald's rendering workers) as well. Peak memory is the largest single process's resident
set, not a sum across workers.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STARTED = time.monotonic()


class BenchError(Exception):
    """A measurement that could not be made; the results say so in its place."""


def say(message: str) -> None:
    """Progress on stderr, stamped with the time since the bench started."""
    elapsed = int(time.monotonic() - STARTED)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def elapsed() -> float:
    return time.monotonic() - STARTED


@dataclass
class Child:
    """What one child process did: its wall time, peak memory, exit code and output."""

    seconds: float
    peak_mb: float
    code: int
    out: str
    err: str

    def check(self, what: str) -> Child:
        if self.code != 0:
            lines = [line for line in self.err.strip().splitlines() if line.strip()]
            last = lines[-1] if lines else "no message"
            raise BenchError(f"{what} exited with {self.code}: {last}")
        return self


def run(args: list[str], cwd: Path = ROOT, timeout: float = 1800.0) -> Child:
    """Run `args` to the end, timing it from start to exit; on timeout its whole process group
    (the child and any workers it forked) is killed and BenchError raised."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: its own session keeps the child from the signal, so stop it
            kill()
            process.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if expired.is_set():
            raise BenchError(f"{' '.join(args[:4])}... took longer than {timeout:.0f} s and was stopped")
        out.seek(0)
        err.seek(0)
        return Child(
            seconds,
            usage.ru_maxrss / 1024,
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


@dataclass
class Trials:
    """Repeated measurements of one thing: the figure is their median."""

    seconds: list[float] = field(default_factory=list)
    peaks_mb: list[float] = field(default_factory=list)

    def add(self, child: Child) -> None:
        self.seconds.append(child.seconds)
        self.peaks_mb.append(child.peak_mb)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_mb(self) -> float:
        return max(self.peaks_mb) if self.peaks_mb else float("nan")

    @property
    def spread(self) -> str:
        """The range of the runs, so a busy machine shows in the figures."""
        if len(self.seconds) < 2:
            return "1 run"
        return f"{len(self.seconds)} runs, {min(self.seconds):.1f}–{max(self.seconds):.1f} s"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def profile_line(args: list[str], cwd: Path = ROOT, timeout: float = 900.0) -> str:
    """Run a Python script or module under cProfile in a child and name where its time went.
    `args` follow `python -m cProfile -o FILE`."""
    with tempfile.TemporaryDirectory(prefix="herald-bench-profile-") as folder:
        stats = Path(folder) / "stats"
        child = run([PYTHON, "-m", "cProfile", "-o", str(stats), *args], cwd=cwd, timeout=timeout)
        child.check("the profiled run")
        return summarize(stats) + f" (a {child.seconds:.0f} s run under the profiler)"


def summarize(stats_file: Path, top: int = 5) -> str:
    """One line from a cProfile stats file: own time by package, then the heaviest functions."""
    import pstats

    table = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]  # key → (cc, nc, tt, ct, callers)
    total = sum(entry[2] for entry in table.values()) or 1.0
    packages: dict[str, float] = {}
    for (filename, _, function), entry in table.items():
        package = _package(filename, function)
        packages[package] = packages.get(package, 0.0) + entry[2]
    heaviest = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:top]
    by_package = ", ".join(
        f"{name} {share / total:.0%}"
        for name, share in sorted(packages.items(), key=lambda item: item[1], reverse=True)[:top]
    )
    functions = ", ".join(f"{_function(key)} {entry[2] / total:.0%}" for key, entry in heaviest)
    return f"own time by package: {by_package}; heaviest functions: {functions}"


_C_MODULES = {
    "builtins": "Python built-ins",
    "marshal": "importing modules",
    "_imp": "importing modules",
    "_duckdb": "duckdb",
}
_OBJECTS = re.compile(r"of '([\w.]+)' objects")
_BUILTIN = re.compile(r"<built-in method ([\w.]+)")


def _package(filename: str, function: str) -> str:
    """Who a function belongs to: a package, Herald's own folder, or the standard library."""
    if filename == "~":  # a function written in C: name its module where the name says it
        found = _OBJECTS.search(function) or _BUILTIN.search(function)
        name = found.group(1) if found else ""
        module = name.partition(".")[0] if "." in name else "builtins"  # `str`, `len`: built-ins
        return _C_MODULES.get(module, module)
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].removesuffix(".py")
    try:
        inside = path.resolve().relative_to(ROOT)
    except ValueError:
        return "Python standard library"
    return "/".join(inside.parts[:2]).removesuffix(".py")


def _function(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function.strip("<>")
    path = Path(filename)
    return f"{'/'.join(path.parts[-2:])}:{line}({function})"
