"""`jobcast dev` as a user runs it: one command, embedded Redis, Ctrl-C leaves nothing behind."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from jobcast.runtime.network import free_port
from tests.helpers.wsclient import follow, status_of

START_TIMEOUT_S = 60.0


@contextmanager
def dev(cwd: Path, port: int, log: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobcast", "dev", "--port", str(port)],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until_running(process: subprocess.Popen[str], log: Path) -> str:
    """Wait for the banner; return the output so far."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while "jobcast is running" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return log.read_text()


def interrupt(process: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a terminal sends it."""
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=40)


async def test_dev_runs_everything_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    port = free_port()
    with dev(tmp_path, port, tmp_path / "first.log") as process:
        output = wait_until_running(process, tmp_path / "first.log")
        base = f"127.0.0.1:{port}"
        for url in (f"http://{base}/api/tasks", f"ws://{base}/ws", f"http://{base}/schema/openapi.json"):
            assert url in output
        assert "auth is off" in output
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3  # redis-server, the API, the worker
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            body = {"type": "demo.sleep", "parameters": {"seconds": 0.2, "steps": 2}}
            task = (await http.post("/api/tasks", json=body)).json()
            frames = await follow(f"ws://127.0.0.1:{port}", task["id"])
        assert status_of(frames[-1]) == "completed"
        assert interrupt(process) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    redis_dir = tmp_path / ".jobcast" / "redis"
    assert any(p.name.startswith("appendonly") for p in redis_dir.iterdir())

    with dev(tmp_path, port, tmp_path / "second.log") as process:
        wait_until_running(process, tmp_path / "second.log")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            again = await http.get(f"/api/tasks/{task['id']}")
        assert again.json()["status"] == "completed"  # kept across restarts (AOF)
        assert interrupt(process) == 0


def test_dev_says_so_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with dev(tmp_path, port, tmp_path / "dev.log") as process:
            assert process.wait(timeout=30) == 1
    assert f"port {port} is in use" in (tmp_path / "dev.log").read_text()
