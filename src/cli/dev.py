"""`jobcast dev`: Redis (embedded unless JOBCAST_REDIS_URL is set), the API and one worker as
child processes; Ctrl-C stops them all, API and worker first so they can finish their writes."""

import os
import signal
import time
from pathlib import Path

from jobcast.cli.health import api_ready
from jobcast.runtime.network import client_host, is_loopback, port_taken
from jobcast.runtime.processes import ChildProcess, jobcast_command, stop_all
from jobcast.runtime.redis_server import RedisServer, RedisServerError, find_redis_server
from jobcast.settings import Settings

READY_WAIT_S = 30.0


def run_dev(settings: Settings) -> int:
    """Run everything until Ctrl-C (exit 0) or until a part dies (exit 1)."""
    if not is_loopback(settings.host):
        print(
            f"jobcast dev: auth is off, so it listens on this machine only, not on {settings.host}; "
            "to serve other machines run `jobcast api` with tokens"
        )
        return 1
    if port_taken(settings.host, settings.port):
        print(f"jobcast dev: port {settings.port} is in use; choose another with --port or JOBCAST_PORT")
        return 1
    redis = None
    if settings.redis_url is None:
        try:
            redis = _start_redis(settings)
        except RedisServerError as error:
            print(f"jobcast dev: {error}")
            return 1
    env = {**os.environ, "JOBCAST_REDIS_URL": redis.url if redis else settings.redis_url_or_default()}
    # Sessions of their own: Ctrl-C reaches only us, and we stop them in order.
    api = jobcast_command("api", "--host", settings.host, "--port", str(settings.port), "--insecure")
    worker = jobcast_command("worker")  # its default tasks: the demo types
    children = [ChildProcess(command, env=env, new_session=True) for command in (api, worker)]
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if not _wait_ready(settings, children):
            return 1
        _print_banner(settings, redis)
        return _supervise(children)
    except KeyboardInterrupt:
        print("\njobcast dev: stopping")
        return 0
    finally:
        stop_all(children)
        if redis is not None:
            redis.stop()


def _start_redis(settings: Settings) -> RedisServer:
    binary = find_redis_server(settings.redis_server)
    data_dir = Path(settings.data_dir) / "redis"
    return RedisServer(binary, data_dir, appendonly=True).start()


def _wait_ready(settings: Settings, children: list[ChildProcess]) -> bool:
    deadline = time.monotonic() + READY_WAIT_S
    while not api_ready(settings.host, settings.port):
        if not all(child.alive() for child in children):
            print("jobcast dev: a process exited during start-up; see its log above")
            return False
        if time.monotonic() > deadline:
            print(f"jobcast dev: the API on port {settings.port} did not become ready")
            return False
        time.sleep(0.2)
    return True


def _print_banner(settings: Settings, redis: RedisServer | None) -> None:
    base = f"{client_host(settings.host)}:{settings.port}"
    redis_line = f"{redis.url} (embedded, data in {redis.data_dir})" if redis else settings.redis_url
    print(
        "\njobcast is running\n"
        f"  Dashboard http://{base}/\n"
        f"  API       http://{base}/api/tasks\n"
        f"  WebSocket ws://{base}/ws\n"
        f"  OpenAPI   http://{base}/schema/openapi.json  (browse: http://{base}/schema/swagger)\n"
        f"  Redis     {redis_line}\n"
        f"  auth is off: every caller is an admin; listening on {settings.host} only\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )


def _supervise(children: list[ChildProcess]) -> int:
    """Wait; if any part dies, say which and stop the rest."""
    while True:
        for child in children:
            if not child.alive():
                print(f"jobcast dev: {child.process.args!r} exited with {child.process.returncode}; stopping")
                return 1
        time.sleep(0.5)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
