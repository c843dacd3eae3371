"""Running `jobcast` commands as subprocesses for tests, and waiting until they are usable."""

import os
from pathlib import Path

import redis

from jobcast.cli.health import api_ready
from jobcast.runtime.processes import ChildProcess, jobcast_command
from jobcast.settings import Settings
from jobcast.store import keys

START_TIMEOUT_S = 30.0


class JobcastProcess(ChildProcess):
    """A `jobcast ...` child with its output in a log file (shown when a test fails)."""

    def __init__(self, arguments: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(jobcast_command(*arguments), env=env, log_path=log_path)


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
    try:
        process.wait_until(lambda: bool(set(client.zrange(keys.WORKERS, 0, -1)) - before), START_TIMEOUT_S)
    finally:
        client.close()
    return process


def start_api(settings: Settings, log_path: Path, port: int) -> JobcastProcess:
    """Start `jobcast api` on `port` and wait until /health/ready answers 200."""
    arguments = ["api", "--port", str(port)] + ([] if settings.auth else ["--insecure"])
    process = JobcastProcess(arguments, environment(settings), log_path)
    process.wait_until(lambda: api_ready("127.0.0.1", port), START_TIMEOUT_S)
    return process
