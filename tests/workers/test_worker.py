"""Tasks run by real `jobcast worker` subprocesses: progress, retries, timeouts, cancellation,
shutdown, and handlers from other modules."""

from pathlib import Path

import httpx
import pytest

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import history, submit
from tests.helpers.processes import JobcastProcess, start_worker
from tests.helpers.runs import EXAMPLE_TASKS, event_frames, watch
from tests.helpers.wsclient import follow, is_final, is_running, status_of


async def test_progress_then_completion_in_seq_order(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    task = await submit(http, "demo.sleep", seconds=1, steps=20)
    async with await watch(app, task["id"]) as ws:
        frames = await ws.until(is_final)
    snapshot, events = frames[0], event_frames(frames[1:])
    assert snapshot["type"] == "snapshot"
    seqs = [snapshot["task"]["seq"]] + [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert "task.progress" in {e["event"] for e in events}
    assert events[-1]["event"] == "task.completed"
    assert events[-1]["result"] == {"slept": 1, "steps": 20}
    stored = await history(http, task["id"])
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert stored[snapshot["task"]["seq"] :] == events
    progress = [e["progress"] for e in stored if e["event"] == "task.progress"]
    assert progress[-1] == {"current": 20, "total": 20, "percent": 100.0, "message": "step 20 of 20"}


async def test_failures_retry_until_max_attempts(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    response = await http.put("/api/task-types/demo.sleep", json={"max_attempts": 2})
    assert response.json()["max_attempts"] == 2
    task = await submit(http, "demo.sleep", seconds=0.1, steps=5, fail_at_step=3)
    async with await watch(app, task["id"]) as ws:
        frames = await ws.until(is_final)
    final = (await http.get(f"/api/tasks/{task['id']}")).json()
    assert final["status"] == "failed"
    assert final["attempts"] == 2
    assert "failed at step 3" in final["error_message"]
    assert status_of(frames[-1]) == "failed"
    kinds = [e["event"] for e in await history(http, task["id"])]
    assert kinds.count("task.started") == 2
    assert kinds.count("task.retrying") == 1
    assert kinds.index("task.retrying") < len(kinds) - 1 - kinds[::-1].index("task.started")
    failed = (await history(http, task["id"]))[-1]
    assert "RuntimeError: failed at step 3" in failed["error_message"]
    assert "Traceback" in failed["traceback"]


async def test_running_task_is_cancelled_within_grace(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    task = await submit(http, "demo.sleep", seconds=60, steps=60)
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_running)
        response = await http.post(f"/api/tasks/{task['id']}/cancel")
        assert response.status_code == 200
        assert response.json()["cancel_requested"] is True
        frames = await ws.until(is_final, timeout_s=5)
    assert frames[-1]["event"] == "task.cancelled"
    assert (await http.get(f"/api/tasks/{task['id']}")).json()["status"] == "cancelled"
    late = await http.put(f"/api/tasks/{task['id']}", json={"progress": {"current": 1, "total": 2}})
    assert late.status_code == 409


async def test_task_cancelled_while_queued_never_runs(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    start_worker(settings, tmp_path / "first.log").stop()  # declares the demo types, then leaves
    queued = await submit(http, "demo.sleep", seconds=0, steps=1)
    assert (await http.post(f"/api/tasks/{queued['id']}/cancel")).json()["status"] == "cancelled"
    later = await submit(http, "demo.sleep", seconds=0, steps=1)
    async with await watch(app, later["id"]) as ws:
        process = start_worker(settings, tmp_path / "worker.log")
        try:
            assert (await ws.until(is_final))[-1]["event"] == "task.completed"
        finally:
            process.stop()
    kinds = [e["event"] for e in await history(http, queued["id"])]
    assert kinds == ["task.created", "task.cancelled"]


async def test_retry_runs_a_failed_task_again(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    await http.put("/api/task-types/demo.sleep", json={"max_attempts": 1})
    task = await submit(http, "demo.sleep", seconds=0, steps=2, fail_at_step=1)
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_final)
        retried = await http.post(f"/api/tasks/{task['id']}/retry")
        assert retried.status_code == 200
        assert retried.json()["status"] == "pending"
        frames = await ws.until(lambda f: is_final(f) and f.get("attempt") == 2)
    assert frames[-1]["event"] == "task.failed"
    retrying = [e for e in await history(http, task["id"]) if e["event"] == "task.retrying"]
    assert [e["reason"] for e in retrying] == ["retry requested"]


async def test_attempt_longer_than_timeout_fails(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    await http.put("/api/task-types/demo.sleep", json={"timeout_s": 0.3, "max_attempts": 1})
    task = await submit(http, "demo.sleep", seconds=30, steps=3)
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_final)
    failed = (await http.get(f"/api/tasks/{task['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error_message"].startswith("TimeoutError")


async def test_workers_online_counts_live_workers(
    http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    process = start_worker(settings, tmp_path / "worker.log")
    assert (await http.get("/api/task-types/demo.sleep")).json()["workers_online"] == 1
    process.stop()
    assert (await http.get("/api/task-types/demo.sleep")).json()["workers_online"] == 0


async def test_handlers_from_another_module(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    process = start_worker(settings, tmp_path / "worker.log", "--tasks", EXAMPLE_TASKS)
    try:
        names = [t["name"] for t in (await http.get("/api/task-types")).json()]
        assert sorted(names) == ["test.crunch", "test.hog", "test.sum", "test.wait"]  # no demo types
        schema = (await http.get("/api/task-types/test.sum")).json()["parameters_schema"]
        assert schema["required"] == ["rows"]
        bad = await http.post("/api/tasks", json={"type": "test.sum", "parameters": {"rows": [1, "x"]}})
        assert bad.status_code == 422
        assert bad.json()["extra"][0]["path"] == "/parameters/rows/1"
        ok = await submit(http, "test.sum", rows=list(range(1, 2001)))
        failing = await submit(http, "test.sum", rows=[1, 2], fail=True)
        for task in (ok, failing):
            await follow(app.ws_url, task["id"])
    finally:
        process.stop()
    done = (await http.get(f"/api/tasks/{ok['id']}")).json()
    assert done["result"] == {"sum": 2001000}
    events = await history(http, ok["id"])
    progress = [e for e in events if e["event"] == "task.progress"]
    assert len(progress) < 2000  # coalesced to at most progress_hz a second
    assert progress[-1]["progress"]["current"] == 2000  # but the last one is always kept
    failed = (await http.get(f"/api/tasks/{failing['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error_message"] == "ValueError: refusing to sum 2 rows"


@pytest.mark.parametrize("module", ["no.such.module", "tests.helpers.wsclient"])
def test_worker_refuses_modules_without_tasks(settings: Settings, tmp_path: Path, module: str) -> None:
    process = JobcastProcess(["worker", "--tasks", module], {}, tmp_path / "worker.log")
    assert process.process.wait(timeout=30) != 0
    assert "jobcast worker:" in process.output()
