"""The child processes jobcast starts — `jobcast dev`'s API and worker, a redis-server, and those
of the tests and benchmarks: each dies with its parent, and is stopped with SIGTERM, then SIGKILL
if it does not exit in time."""

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
STOP_WAIT_S = 15.0
OUTPUT_TAIL_CHARS = 8000


class ProcessFailed(RuntimeError):
    """A child exited, or did not become ready, while it was starting."""


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux), so none is left behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def jobcast_command(*arguments: str) -> list[str]:
    """`jobcast ARGUMENTS...` run by this very interpreter."""
    return [sys.executable, "-m", "jobcast", *arguments]


class ChildProcess:
    """A child process; its output goes to `log_path`, or where ours goes when there is none."""

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        new_session: bool = False,
        setup: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log: IO[bytes] | None = None if log_path is None else log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self._log,
            stderr=None if self._log is None else subprocess.STDOUT,
            start_new_session=new_session,  # Ctrl-C reaches only the parent, which stops us in order
            preexec_fn=_with_parent(setup),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = STOP_WAIT_S, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait; SIGKILL if it has not exited within `timeout_s`."""
        stop_all([self], timeout_s, sig)
        return int(self.process.returncode)

    def output(self) -> str:
        """The end of what it wrote to its log."""
        if self.log_path is None:
            return ""
        return self.log_path.read_text(errors="replace")[-OUTPUT_TAIL_CHARS:]

    def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Poll `ready` until it holds; ProcessFailed (and the child killed) if it exits first or
        takes longer than `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not self.alive():
                raise ProcessFailed(f"process exited while starting:\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ProcessFailed(f"process did not become ready:\n{self.output()}")
            time.sleep(0.05)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()


def stop_all(
    children: Iterable[ChildProcess], timeout_s: float = STOP_WAIT_S, sig: int = signal.SIGTERM
) -> None:
    """Signal every child at once, then give them `timeout_s` in all to exit; SIGKILL the rest."""
    children = list(children)
    for child in children:
        if child.alive():
            child.process.send_signal(sig)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
        child._close_log()


def _with_parent(setup: Callable[[], None] | None) -> Callable[[], None]:
    def preexec() -> None:
        die_with_parent()
        if setup is not None:
            setup()

    return preexec
