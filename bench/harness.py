"""What every bench script shares: its own redis-server, `jobcast api` and `jobcast worker`
processes, load generators in processes of their own, CPU accounting, one JSON line out."""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import redis

from jobcast.cli.health import api_ready
from jobcast.runtime.network import free_port
from jobcast.runtime.processes import ChildProcess, die_with_parent, jobcast_command
from jobcast.runtime.redis_server import RedisServer, find_redis_server
from jobcast.store import keys

START_TIMEOUT_S = 90.0  # a loaded two-core machine starts a worker slowly
# Benches run with auth off (`jobcast api --insecure`): tokens and quotas would only add the
# per-request token lookup and the submission-rate counter, which a deployment may or may not pay.
BENCH_SETTINGS = {
    "JOBCAST_AUTH": "false",
    "JOBCAST_LOG_LEVEL": "WARNING",
    "JOBCAST_WS_MAX_CONNECTIONS": "100000",
}


def arguments(description: str, **extra: Any) -> argparse.Namespace:
    """`--quick`: tiny counts and a few seconds, for the smoke test; `--runs`: repeat inside."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the script works")
    for name, default in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()


def emit(figures: dict[str, Any]) -> None:
    """The script's one line of output."""
    print(json.dumps(figures, sort_keys=True), flush=True)


def raise_file_limit() -> None:
    """Thousands of sockets need thousands of descriptors: take the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def cpu_s_of(process: psutil.Process) -> float:
    """User + system CPU seconds a process has used so far (0 once it has exited)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


class Child(ChildProcess):
    """A child process whose output goes to a log file, and whose CPU time and memory we read."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(command, env=env, log_path=log_path, setup=raise_file_limit)
        self.ps = psutil.Process(self.pid)

    def cpu_s(self) -> float:
        return cpu_s_of(self.ps)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)


class Stack:
    """A redis-server of its own, and the jobcast processes a bench starts on it; all stopped
    (and the data directory removed) on exit."""

    def __init__(self, **settings: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="jobcast-bench-")
        self.dir = Path(self._dir.name)
        self.redis_server = RedisServer(
            find_redis_server(os.environ.get("JOBCAST_REDIS_SERVER")), self.dir / "redis", appendonly=True
        )
        self.settings = {**BENCH_SETTINGS, **settings}
        self.children: list[Child] = []

    def __enter__(self) -> "Stack":
        raise_file_limit()
        self.redis_server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for child in reversed(self.children):
            child.stop()
        self.redis_server.stop()
        self._dir.cleanup()

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
        env.update(self.settings)
        env.update(overrides)
        env["JOBCAST_REDIS_URL"] = self.redis_url
        return env

    def spawn(self, name: str, command: list[str], **env: str) -> Child:
        child = Child(command, self.env(**env), self.dir / f"{name}.log")
        self.children.append(child)
        return child

    def api(self, port: int | None = None, **env: str) -> tuple[Child, int]:
        """`jobcast api --insecure` on a free port, once /health/ready answers."""
        port = port or free_port()
        command = jobcast_command("api", "--port", str(port), "--insecure")
        child = self.spawn(f"api-{port}", command, **env)
        child.wait_until(lambda: api_ready("127.0.0.1", port), START_TIMEOUT_S)
        return child, port

    def baseline(self, port: int | None = None) -> tuple[Child, int]:
        """bench.baseline_app (Litestar's ChannelsPlugin and a bare POST route) on a free port."""
        port = port or free_port()
        command = [sys.executable, "-m", "bench.baseline_app", str(port), self.redis_url]
        child = self.spawn(f"baseline-{port}", command)
        child.wait_until(lambda: api_ready("127.0.0.1", port), START_TIMEOUT_S)
        return child, port

    def worker(self, *modules: str, concurrency: int = 10, **env: str) -> Child:
        """`jobcast worker --tasks ...`, once its heartbeat is in Redis."""
        client = self.redis()
        before = set(client.zrange(keys.WORKERS, 0, -1))
        command = jobcast_command("worker", "--tasks", *modules)
        command += ["--concurrency", str(concurrency)]
        child = self.spawn(f"worker-{len(self.children)}", command, **env)
        try:
            child.wait_until(lambda: bool(set(client.zrange(keys.WORKERS, 0, -1)) - before), START_TIMEOUT_S)
        finally:
            client.close()
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        self.children.remove(child)


def _generator_setup() -> None:
    die_with_parent()
    raise_file_limit()


class Generator:
    """A load generator: `python -m bench.<module> ...` in a process of its own. It prints one
    JSON line when ready, waits for a line on stdin to start, and prints one JSON line of results."""

    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_generator_setup,
        )
        self.ps = psutil.Process(self.process.pid)

    def ready(self, timeout_s: float = 120) -> dict[str, Any]:
        return self._line(timeout_s)

    def go(self, message: str = "go") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(message + "\n")
        self.process.stdin.flush()

    def cpu_s(self) -> float:
        return cpu_s_of(self.ps)

    def result(self, timeout_s: float = 300) -> dict[str, Any]:
        line = self._line(timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.kill()
        return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        import select

        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.kill()
            raise RuntimeError(f"load generator {self.process.args} gave no answer")
        answer: dict[str, Any] = json.loads(line)
        return answer


@contextlib.contextmanager
def generators(*made: Generator) -> Iterator[list[Generator]]:
    """Kill every generator on the way out, whatever happened."""
    try:
        yield list(made)
    finally:
        for generator in made:
            generator.kill()


def control_lines() -> Iterator[str]:
    """In a generator: the lines the bench sends on stdin."""
    for line in sys.stdin:
        yield line.strip()


def say(answer: dict[str, Any]) -> None:
    """In a generator: one JSON line to the bench."""
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
