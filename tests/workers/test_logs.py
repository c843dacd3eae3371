"""Logs are one JSON object per line; a line written while a task runs names the task, its type
and its attempt, from any logger, in the worker and in a blocking handler's child process."""

import json
import logging
from pathlib import Path
from typing import Any

import httpx

from jobcast.runtime.logs import JsonFormatter, TaskFields, task_logging
from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.processes import JobcastProcess, start_api, start_worker
from tests.helpers.wsclient import follow


def json_lines(process: JobcastProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each parsed as JSON (a line that is not JSON fails)."""
    return [json.loads(line) for line in process.output().splitlines() if line.strip()]


async def test_worker_lines_are_json_and_name_the_running_task(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    worker = start_worker(settings, tmp_path / "worker.log", "--tasks", "tests.helpers.example_tasks")
    try:
        ids = {}
        for name, parameters in [
            ("test.sum", {"rows": [1, 2, 3], "fail": True}),
            ("test.crunch", {"seconds": 0.2}),
        ]:
            response = await http.post("/api/tasks", json={"type": name, "parameters": parameters})
            ids[name] = response.json()["id"]
            await follow(app.ws_url, ids[name])
    finally:
        worker.stop()
    lines = json_lines(worker)
    assert {"at", "level", "logger", "message"} <= set(lines[0])
    summing = next(line for line in lines if line["message"] == "summing 3 rows")
    assert summing | {"at": None} == {
        "at": None, "level": "INFO", "logger": "tests.helpers.example_tasks", "message": "summing 3 rows",
        "task_id": ids["test.sum"], "type": "test.sum", "attempt": 1,
    }  # fmt: skip
    failed = next(line for line in lines if line["message"].startswith("attempt 1 failed"))
    assert (failed["task_id"], failed["type"], failed["attempt"]) == (ids["test.sum"], "test.sum", 1)
    crunching = next(line for line in lines if line["message"].startswith("crunching"))
    assert (crunching["task_id"], crunching["type"], crunching["attempt"]) == (
        ids["test.crunch"],
        "test.crunch",
        1,
    )
    started = next(line for line in lines if line["message"].startswith("worker "))
    assert "task_id" not in started  # no task runs while the worker starts


def test_api_lines_are_json_uvicorns_too(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    api = start_api(settings, tmp_path / "api.log", port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200
    finally:
        api.stop()
    loggers = {line["logger"] for line in json_lines(api)}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers


def test_a_line_written_while_a_task_runs_names_it_in_json() -> None:
    """Any logger's record (here uvicorn's) gets the running task's fields; masking secrets is
    tested in test_secrets.py."""
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws?x=1"), None,
    )  # fmt: skip
    with task_logging("T1", "demo.sleep", 2):
        assert TaskFields().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == '127.0.0.1:5000 - "WebSocket /ws?x=1" [accepted]'
    assert (line["task_id"], line["type"], line["attempt"]) == ("T1", "demo.sleep", 2)
