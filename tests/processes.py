"""Running `jobcast` commands as subprocesses for tests, and waiting until they are usable."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from src import keys
from src.health_check import api_ready
from src.settings import Settings

START_TIMEOUT_S = 30.0


class JobcastProcess:
    """A `python -m src ...` child with its output in a log file (shown when a test fails)."""

    def __init__(self, arguments: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "src", *arguments], env=env, stdout=self._log, stderr=subprocess.STDOUT
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

    def stop(self, timeout_s: float = 15) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def environment(settings: Settings) -> dict[str, str]:
    """The settings as JOBCAST_* variables for a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    for name in Settings.__struct_fields__:
        value = getattr(settings, name)
        if value is not None:
            env[f"JOBCAST_{name.upper()}"] = str(value)
    return env


def start_worker(settings: Settings, log_path: Path, *arguments: str) -> JobcastProcess:
    """Start `jobcast worker` and wait until its heartbeat is in Redis."""
    client = redis.Redis.from_url(settings.redis_url_or_default())
    before = set(client.zrange(keys.WORKERS, 0, -1))
    process = JobcastProcess(["worker", *arguments], environment(settings), log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while set(client.zrange(keys.WORKERS, 0, -1)) <= before:
            _check_starting(process, deadline)
            time.sleep(0.05)
    finally:
        client.close()
    return process


def start_api(settings: Settings, log_path: Path, port: int) -> JobcastProcess:
    """Start `jobcast api` on `port` and wait until /health/ready answers 200."""
    arguments = ["api", "--port", str(port)] + ([] if settings.auth else ["--insecure"])
    process = JobcastProcess(arguments, environment(settings), log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not api_ready("127.0.0.1", port):
        _check_starting(process, deadline)
        time.sleep(0.05)
    return process


def _check_starting(process: JobcastProcess, deadline: float) -> None:
    if not process.alive():
        raise RuntimeError(f"process exited while starting:\n{process.output()}")
    if time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"process did not become ready:\n{process.output()}")
