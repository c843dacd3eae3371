"""`jobcast dev`: Redis (embedded unless JOBCAST_REDIS_URL is set), the API and one worker as
child processes; Ctrl-C stops them all, API and worker first so they can finish their writes."""

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from src.health_check import api_ready, client_host
from src.redis_server import RedisServer, RedisServerError, die_with_parent, find_redis_server
from src.settings import Settings

STOP_WAIT_S = 15.0
READY_WAIT_S = 30.0


def run_dev(settings: Settings) -> int:
    """Run everything until Ctrl-C (exit 0) or until a part dies (exit 1)."""
    if not _is_loopback(settings.host):
        print(
            f"jobcast dev: auth is off, so it listens on this machine only, not on {settings.host}; "
            "to serve other machines run `jobcast api` with tokens"
        )
        return 1
    if _port_taken(settings.host, settings.port):
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
    children = [
        _spawn(["api", "--host", settings.host, "--port", str(settings.port), "--insecure"], env),
        _spawn(["worker", "--tasks", "src.workers.demo"], env),
    ]
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
        _stop(children)
        if redis is not None:
            redis.stop()


def _start_redis(settings: Settings) -> RedisServer:
    binary = find_redis_server(settings.redis_server)
    data_dir = Path(settings.data_dir) / "redis"
    return RedisServer(binary, data_dir, appendonly=True).start()


def _spawn(arguments: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of their own: Ctrl-C reaches only us, and we stop them in order.
    return subprocess.Popen(
        [sys.executable, "-m", "src", *arguments],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def _wait_ready(settings: Settings, children: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + READY_WAIT_S
    while not api_ready(settings.host, settings.port):
        if any(child.poll() is not None for child in children):
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


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Wait; if any part dies, say which and stop the rest."""
    while True:
        for child in children:
            if child.poll() is not None:
                print(f"jobcast dev: {child.args!r} exited with {child.returncode}; stopping")
                return 1
        time.sleep(0.5)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
