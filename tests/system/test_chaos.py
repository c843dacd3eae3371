"""Several APIs and workers on one Redis, thousands of tasks, and failures on purpose: every
subscriber sees every event once and in order, every task ends once, and a task whose worker
dies runs again within the recovery bound."""

import asyncio
import itertools
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
import websockets
from redis.asyncio import Redis

from jobcast.events.client import Client
from jobcast.events.hub import Hub
from jobcast.events.protocol import Subscribe, subscribed_frame
from jobcast.model.changes import TaskUpdate
from jobcast.model.principals import ANONYMOUS
from jobcast.runtime.network import free_port
from jobcast.runtime.redis_server import RedisServer
from jobcast.settings import Settings
from jobcast.store.stores import open_stores
from tests.conftest import ServedApp
from tests.helpers.api import body_of, create_type, history, read_task, submit, utc_time
from tests.helpers.processes import JobcastProcess, start_api
from tests.helpers.runs import Workers, event_frames, event_is, eventually, watch, worker_pid
from tests.helpers.wsclient import Frame, WsClient, is_final, is_running, status_of

T = TypeVar("T")
Task = dict[str, Any]
Event = dict[str, Any]

TASKS = 2000
IN_FLIGHT = 50  # requests at once, per test
WAIT_ALL_S = 240.0
# The hub closes a client whose outbox fills up. Here each "all" client shares one process with
# the submitters and thousands of frames; this test is about delivery, not about slow clients.
ROOMY_WS_BUFFER = 50_000
TERMINAL_EVENTS = {"task.completed", "task.failed", "task.cancelled"}


async def bounded(limit: int, calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await every call, at most `limit` at a time; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


class Apis:
    """`jobcast api` processes, each on a port of its own; one can be killed and started again."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self._settings = settings
        self._tmp_path = tmp_path
        self._logs = itertools.count()
        self.ports: list[int] = []
        self.processes: list[JobcastProcess] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            port = free_port()
            self.processes.append(start_api(self._settings, self._log(), port))
            self.ports.append(port)

    def restart(self, index: int) -> None:
        """SIGKILL one API, then start a new one on the same port."""
        self.processes[index].kill()
        self.processes[index].stop()
        self.processes[index] = start_api(self._settings, self._log(), self.ports[index])

    def http_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def ws_url(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.ports[index]}"

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()

    def _log(self) -> Path:
        return self._tmp_path / f"api{next(self._logs)}.log"


class Cluster:
    """APIs and workers as separate processes on one Redis, with an HTTP client per API."""

    def __init__(self, settings: Settings, tmp_path: Path, *, apis: int, workers: int) -> None:
        self.settings = settings
        self.apis = Apis(settings, tmp_path)
        self.workers = Workers(settings, tmp_path)
        self._counts = (apis, workers)
        self.http: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> "Cluster":
        apis, workers = self._counts
        try:
            await asyncio.to_thread(self.apis.start, apis)
            await asyncio.to_thread(self.workers.start, workers)
        except BaseException:
            await asyncio.to_thread(self._stop_all)
            raise
        self.http = [httpx.AsyncClient(base_url=self.apis.http_url(i), timeout=30) for i in range(apis)]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self.http:
            await client.aclose()
        await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        self.workers.stop_all()
        self.apis.stop_all()

    def ws_urls(self) -> list[str]:
        return [self.apis.ws_url(i) for i in range(len(self.apis.ports))]

    async def records_and_histories(self, task_ids: list[str]) -> list[tuple[Task, list[Event]]]:
        """Each task's record and stored history, read over HTTP from the APIs in turn."""

        async def both(index: int, task_id: str) -> tuple[Task, list[Event]]:
            http = self.http[index % len(self.http)]
            return await read_task(http, task_id), await history(http, task_id)

        return await bounded(IN_FLIGHT, (both(i, task_id) for i, task_id in enumerate(task_ids)))


def task_of(frame: Frame) -> str | None:
    """The task a subscribed, snapshot or event frame is about."""
    match frame.get("type"):
        case "event":
            return str(frame["task_id"])
        case "snapshot":
            return str(frame["task"]["id"])
        case "subscribed" if "task_id" in frame["subscription"]:
            return str(frame["subscription"]["task_id"])
    return None


def seq_of(frame: Frame) -> int | None:
    match frame.get("type"):
        case "event":
            return int(frame["seq"])
        case "snapshot":
            return int(frame["task"]["seq"])
    return None


class Listener:
    """One /ws connection read in the background: its frames by task, and which tasks ended."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.by_task: defaultdict[str, list[Frame]] = defaultdict(list)
        self.others: list[Frame] = []
        self.finished: set[str] = set()
        self.subscriptions: set[str] = set()
        self._news = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, ws_url: str, **subscription: Any) -> "Listener":
        """Connect; with a group subscription, it is in force when this returns."""
        ws = await WsClient.connect(ws_url + "/ws")
        if subscription:
            await ws.send(op="subscribe", **subscription)
            assert (await ws.recv())["type"] == "subscribed"
        return cls(ws)

    async def subscribe(self, task_id: str) -> None:
        self.subscriptions.add(task_id)
        await self.ws.send(op="subscribe", task_id=task_id)

    async def wait_finished(self, task_ids: Iterable[str]) -> None:
        wanted = set(task_ids)
        while not wanted <= self.finished:
            if self._reader.done():
                raise AssertionError(
                    f"closed with {self.ws.connection.close_code} before {len(wanted - self.finished)} "
                    f"tasks ended: {self._reader.exception()!r}"
                )
            self._news.clear()
            await self._news.wait()

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        try:
            async for message in self.ws.connection:
                frame = json.loads(message)
                task_id = task_of(frame)
                if task_id is None:
                    self.others.append(frame)
                    continue
                self.by_task[task_id].append(frame)
                if is_final(frame):
                    self.finished.add(task_id)
                    self._news.set()
        finally:
            self._news.set()


def whole_history_problems(task_id: str, frames: list[Frame], stored: list[Event]) -> list[str]:
    """A client subscribed before the task existed must have seen exactly its stored history."""
    if any(f["type"] != "event" for f in frames) or event_frames(frames) != stored:
        seen = [f.get("seq") for f in frames]
        return [f"{task_id}: saw seqs {seen}, stored {[e['seq'] for e in stored]}"]
    return []


def rest_of_history_problems(task_id: str, frames: list[Frame], stored: list[Event]) -> list[str]:
    """A task subscription: subscribed, a snapshot, then exactly the stored events after it."""
    kinds = [f["type"] for f in frames]
    if kinds[:2] != ["subscribed", "snapshot"] or set(kinds[2:]) - {"event"}:
        return [f"{task_id}: frames {kinds}"]
    snapshot = frames[1]["task"]
    if snapshot["status"] != stored[snapshot["seq"] - 1]["status"]:
        return [f"{task_id}: snapshot at seq {snapshot['seq']} disagrees with the history"]
    if event_frames(frames[2:]) != stored[snapshot["seq"] :]:
        seen = [f["seq"] for f in frames[2:]]
        return [f"{task_id}: after snapshot {snapshot['seq']} saw {seen} of {len(stored)} stored"]
    return []


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_clients_of_two_apis_see_every_event_of_2000_tasks_once_and_in_order(
    settings: Settings, tmp_path: Path
) -> None:
    roomy = msgspec.structs.replace(settings, ws_buffer=ROOMY_WS_BUFFER)
    async with Cluster(roomy, tmp_path, apis=2, workers=3) as cluster:
        urls = cluster.ws_urls()
        everything = [await Listener.open(url, all=True) for url in urls for _ in range(2)]
        by_id = [[await Listener.open(url) for _ in range(3)] for url in urls]
        listeners = everything + [listener for group in by_id for listener in group]

        async def submit_one(index: int) -> str:
            task = await submit(cluster.http[index % 2], "demo.sleep", seconds=0.05, steps=2)
            if index % 10 == 0:  # one client of each API follows this task by its id
                for group in by_id:
                    await group[index // 10 % len(group)].subscribe(task["id"])
            return str(task["id"])

        started = time.monotonic()
        task_ids = await bounded(IN_FLIGHT, (submit_one(i) for i in range(TASKS)))
        submitted_s = time.monotonic() - started
        async with asyncio.timeout(WAIT_ALL_S):
            for listener in everything:
                await listener.wait_finished(task_ids)
            for listener in listeners[len(everything) :]:
                await listener.wait_finished(listener.subscriptions)
        finished_s = time.monotonic() - started
        for listener in listeners:
            await listener.close()
        stored = dict(zip(task_ids, await cluster.records_and_histories(task_ids), strict=True))

    assert len(set(task_ids)) == TASKS
    problems: list[str] = []
    for listener in everything:
        assert [f["type"] for f in listener.others] == [], listener.others
        assert set(listener.by_task) == set(task_ids)
        for task_id in task_ids:
            problems += whole_history_problems(task_id, listener.by_task[task_id], stored[task_id][1])
    followed = 0
    for listener in listeners[len(everything) :]:
        assert listener.others == [], listener.others
        assert set(listener.by_task) == listener.subscriptions
        followed += len(listener.subscriptions)
        for task_id in listener.subscriptions:
            problems += rest_of_history_problems(task_id, listener.by_task[task_id], stored[task_id][1])
    assert problems == [], f"{len(problems)} tasks seen wrong, e.g. {problems[:5]}"
    assert all(record["status"] == "completed" for record, _ in stored.values())

    events = sum(len(events) for _, events in stored.values())
    frames = sum(len(frames) for listener in listeners for frames in listener.by_task.values())
    print(
        f"\n{TASKS} tasks, {events} events stored, {frames} frames checked on {len(listeners)} clients "
        f"({len(everything)} of all tasks, {followed} task subscriptions); submitted in {submitted_s:.1f}s "
        f"({TASKS / submitted_s:.0f}/s), all ended after {finished_s:.1f}s "
        f"({TASKS / finished_s:.0f} tasks/s, {events / finished_s:.0f} events/s)"
    )


class Submissions:
    """Submits through whichever API answers, retrying with the same Idempotency-Key."""

    def __init__(self, http: list[httpx.AsyncClient]) -> None:
        self._http = http
        self.unavailable = 0  # 503: not known to be stored; the key tells on the next try
        self.lost = 0  # no answer: stored or not, the key tells
        self.repeats = 0  # 200: an earlier try had stored it
        self.stored_despite_503 = 0  # Redis ran the write, then the reply was lost with the connection
        self.done = 0

    async def submit(self, index: int, parameters: dict[str, Any]) -> Task:
        return await asyncio.wait_for(self._submit(index, parameters), WAIT_ALL_S)

    async def _submit(self, index: int, parameters: dict[str, Any]) -> Task:
        body = {"type": "demo.sleep", "parameters": parameters}
        headers = {"Idempotency-Key": f"chaos-{index}"}
        unanswered = False
        for attempt in itertools.count(index):
            http = self._http[attempt % len(self._http)]
            try:
                response = await http.post("/api/tasks", json=body, headers=headers)
            except httpx.TransportError:
                self.lost += 1
                unanswered = True
                await asyncio.sleep(0.2)  # pacing the retries, not waiting for an event
                continue
            if response.status_code != 503:
                break
            self.unavailable += 1
            await asyncio.sleep(0.2)
        assert response.status_code in (200, 202), response.text
        self.repeats += response.status_code == 200
        self.stored_despite_503 += response.status_code == 200 and not unanswered
        self.done += 1
        task: Task = response.json()
        return task


class Follower:
    """Follows one task over /ws/tasks/{id}, reconnecting to either API with `since` when its
    connection drops, until it sees the task end. Keeps each connection's frames."""

    def __init__(self, task_id: str, ws_urls: list[str], first: int) -> None:
        self.task_id = task_id
        self._urls = ws_urls
        self._next = first
        self.connections: list[tuple[int | None, list[Frame]]] = []  # (since asked, frames)

    @property
    def last_seq(self) -> int | None:
        seqs = [seq_of(f) for _, frames in self.connections for f in frames if seq_of(f) is not None]
        return seqs[-1] if seqs else None

    @property
    def last_frame(self) -> Frame:
        return [f for _, frames in self.connections for f in frames if seq_of(f) is not None][-1]

    async def run(self) -> None:
        while True:
            if await self._follow_once():
                return
            await asyncio.sleep(0.2)  # pacing the reconnects while an API or Redis is down

    async def _follow_once(self) -> bool:
        """One connection; True once the task was seen ending."""
        since = self.last_seq
        url = f"{self._urls[self._next % len(self._urls)]}/ws/tasks/{self.task_id}"
        self._next += 1
        frames: list[Frame] = []
        try:
            async with websockets.connect(url if since is None else f"{url}?since={since}") as connection:
                self.connections.append((since, frames))
                async for message in connection:
                    frame = json.loads(message)
                    frames.append(frame)
                    if frame["type"] == "error":
                        assert frame["code"] == "unavailable", frame  # Redis down: come back later
                    elif is_final(frame):
                        return True
        except (OSError, TimeoutError, websockets.WebSocketException):
            pass
        return False


def follower_problems(follower: Follower, stored: list[Event]) -> list[str]:
    """Across reconnects: each event follows the seq seen before it and equals the stored one;
    a snapshot never goes back and agrees with the history."""
    last: int | None = None
    for since, frames in follower.connections:
        if since != last:
            return [f"{follower.task_id}: reconnected with since={since} after seeing seq {last}"]
        for frame in frames:
            seq = seq_of(frame)
            if seq is None:
                continue
            if frame["type"] == "event" and (last is None or seq != last + 1):
                return [f"{follower.task_id}: event {seq} after seq {last}"]
            if frame["type"] == "event" and event_frames([frame])[0] != stored[seq - 1]:
                return [f"{follower.task_id}: event {seq} differs from the stored one"]
            went_back = last is not None and seq < last
            if frame["type"] == "snapshot" and (went_back or status_of(frame) != stored[seq - 1]["status"]):
                return [f"{follower.task_id}: snapshot at {seq} after seq {last}"]
            last = seq
    return []


def history_problems(record: Task, events: list[Event]) -> list[str]:
    """One task's record and history after the chaos: contiguous, ended once, never overwritten."""
    task_id = record["id"]
    if [e["seq"] for e in events] != list(range(1, len(events) + 1)) or record["seq"] != events[-1]["seq"]:
        return [f"{task_id}: seqs {[e['seq'] for e in events]}, record seq {record['seq']}"]
    finals = [i for i, e in enumerate(events) if e["event"] in TERMINAL_EVENTS]
    if finals != [len(events) - 1]:
        return [f"{task_id}: terminal events at {finals} of {len(events)}"]
    attempts = [e["attempt"] for e in events]
    started = [e["attempt"] for e in events if e["event"] == "task.started"]
    if attempts != sorted(attempts) or started != list(range(1, record["attempts"] + 1)):
        return [f"{task_id}: attempts {attempts}, started {started}, record {record['attempts']}"]
    if events[-1]["attempt"] != record["attempts"] or events[-1]["status"] != record["status"]:
        return [f"{task_id}: ended by attempt {events[-1]['attempt']} of {record['attempts']}"]
    return []


def worker_losses(events: list[Event]) -> list[tuple[int, Event]]:
    """For each attempt lost with its worker: the worker's pid, and what followed: the next
    `task.started`, or the `task.failed` itself when the attempts were spent."""
    losses: list[tuple[int, Event]] = []
    worker = ""
    for i, event in enumerate(events):
        if event["event"] == "task.started":
            worker = event["worker"]
        if event.get("reason") != "worker lost":
            continue
        pid = worker_pid({"worker": worker})
        if event["event"] == "task.failed":
            losses.append((pid, event))
        else:
            losses.append((pid, next(e for e in events[i:] if e["event"] == "task.started")))
    return losses


def figures(values: list[float]) -> str:
    if not values:
        return "none"
    return f"p50 {statistics.median(values):.2f}s, max {max(values):.2f}s over {len(values)}"


MAX_KILLS = 20
KILL_EVERY_S = 2.0
REDIS_DOWN_S = 1.0
UNDERWAY = 200  # submissions stored before the chaos begins
FOLLOW_EVERY = 10  # one task in ten has a follower


async def any_active(http: list[httpx.AsyncClient]) -> bool:
    """Whether some task is pending or running, asking each API in turn; True when none answers."""
    for client in http:
        try:
            response = await client.get("/api/tasks", params={"status": "pending,running", "limit": 1})
        except httpx.TransportError:
            continue
        if response.status_code == 200:
            return bool(response.json())
    return True


async def all_task_ids(http: httpx.AsyncClient) -> list[str]:
    """Every stored task's id, page by page along the Link header."""
    ids: list[str] = []
    url: str | None = "/api/tasks?limit=1000"
    while url is not None:
        response = await http.get(url)
        assert response.status_code == 200, response.text
        ids += [task["id"] for task in response.json()]
        url = response.links.get("next", {}).get("url")
    return ids


class Chaos:
    """Failures on a schedule while tasks run: Redis restarted once, then a worker SIGKILLed
    every KILL_EVERY_S (and a new one started), one API killed and started again after the
    second kill. Kills come after the Redis restart: the reconciler deliberately waits out
    heartbeats for a while after Redis comes back, and the recovery bound is about workers
    dying while the store is up."""

    def __init__(self, cluster: Cluster, redis_server: RedisServer, rng: random.Random) -> None:
        self._cluster = cluster
        self._redis_server = redis_server
        self._random = rng
        self.killed_at: dict[int, float] = {}  # pid -> wall clock just before its SIGKILL
        self.redis_restarts = 0
        self.redis_down_s = 0.0
        self.api_restarts = 0

    async def run(self, underway: asyncio.Event, active: Callable[[], Awaitable[bool]]) -> None:
        await underway.wait()
        await self.restart_redis()
        next_kill_s = time.monotonic()
        while len(self.killed_at) < MAX_KILLS and await active():
            await asyncio.sleep(max(0.0, next_kill_s - time.monotonic()))  # the chaos's own pace
            next_kill_s = time.monotonic() + KILL_EVERY_S
            await self.kill_a_worker()
            if len(self.killed_at) == 2:
                await self.restart_api(1)

    async def kill_a_worker(self) -> None:
        workers = self._cluster.workers
        victim = self._random.choice([p for p in workers.processes if p.alive()])
        self.killed_at[victim.pid] = time.time()
        victim.kill()
        await asyncio.to_thread(workers.start)

    async def restart_redis(self) -> None:
        port = self._redis_server.port
        stopped_s = time.monotonic()
        await asyncio.to_thread(self._redis_server.stop)
        await asyncio.sleep(REDIS_DOWN_S)  # an outage long enough for requests to meet it
        await asyncio.to_thread(self._redis_server.start)
        assert self._redis_server.port == port, "Redis came back on another port"
        self.redis_down_s = time.monotonic() - stopped_s
        self.redis_restarts += 1

    async def restart_api(self, index: int) -> None:
        await asyncio.to_thread(self._cluster.apis.restart, index)
        self.api_restarts += 1


def outcome_problems(record: Task, events: list[Event], parameters: dict[str, Any]) -> list[str]:
    """Completed with its result, or failed only because worker kills spent its attempts."""
    if record["status"] == "completed" and record["result"] == {"slept": parameters["seconds"], "steps": 3}:
        return []
    spent = record["attempts"] == record["max_attempts"]
    if record["status"] == "failed" and spent and events[-1].get("reason") == "worker lost":
        return []
    return [f"{record['id']}: {record['status']} after {record['attempts']}: {record['error_message']}"]


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_2000_tasks_end_once_through_worker_kills_a_redis_restart_and_an_api_restart(
    redis_server: RedisServer, settings: Settings, tmp_path: Path
) -> None:
    assert redis_server.appendonly
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    parameters = [{"seconds": round(rng.uniform(0.3, 1.0), 2), "steps": 3} for _ in range(TASKS)]
    async with Cluster(settings, tmp_path, apis=2, workers=3) as cluster:
        put = await cluster.http[0].put("/api/task-types/demo.sleep", json={"max_attempts": 10})
        assert put.status_code == 200, put.text
        submissions = Submissions(cluster.http)
        chaos = Chaos(cluster, redis_server, rng)
        underway = asyncio.Event()
        followers: list[Follower] = []
        following: list[asyncio.Task[None]] = []

        async def submit_one(index: int) -> str:
            task = await submissions.submit(index, parameters[index])
            if submissions.done >= UNDERWAY:
                underway.set()
            if index % FOLLOW_EVERY == 0:
                followers.append(Follower(task["id"], cluster.ws_urls(), first=index))
                following.append(asyncio.create_task(followers[-1].run()))
            return str(task["id"])

        async def active() -> bool:
            return submissions.done < TASKS or await any_active(cluster.http)

        started_s = time.monotonic()
        chaos_run = asyncio.create_task(chaos.run(underway, active))
        try:
            task_ids = await bounded(IN_FLIGHT, (submit_one(i) for i in range(TASKS)))
            await chaos_run
            await eventually(lambda: any_active(cluster.http), False, WAIT_ALL_S)
            ended_s = time.monotonic() - started_s
            async with asyncio.timeout(60):
                await asyncio.gather(*following)
        finally:
            for running in [chaos_run, *following]:
                running.cancel()
        listed = await all_task_ids(cluster.http[0])
        stored = dict(zip(task_ids, await cluster.records_and_histories(task_ids), strict=True))

    assert len(set(task_ids)) == TASKS
    assert sorted(listed) == sorted(task_ids), "each submission is stored once"
    problems: list[str] = []
    recoveries: list[float] = []
    for task_id, task_parameters in zip(task_ids, parameters, strict=True):
        record, events = stored[task_id]
        problems += history_problems(record, events) + outcome_problems(record, events, task_parameters)
        for pid, next_event in worker_losses(events):
            assert pid in chaos.killed_at, f"{task_id}: live worker {pid} was declared lost"
            recoveries.append(utc_time(next_event["at"]).timestamp() - chaos.killed_at[pid])
    for follower in followers:
        record, events = stored[follower.task_id]
        problems += follower_problems(follower, events)
        if (status_of(follower.last_frame), follower.last_seq) != (record["status"], record["seq"]):
            problems.append(f"{follower.task_id}: follower ended at {follower.last_frame}, record {record}")
    assert problems == [], f"{len(problems)} problems, e.g. {problems[:5]}"

    outcomes = Counter(record["status"] for record, _ in stored.values())
    reasons = Counter(e["reason"] for _, events in stored.values() for e in events if "reason" in e)
    reconnects = sum(len(f.connections) - 1 for f in followers)
    print(
        f"\nseed {seed}: {TASKS} tasks ended after {ended_s:.1f}s: {dict(outcomes)}\n"
        f"retry and failure reasons: {dict(reasons)}\n"
        f"{len(chaos.killed_at)} worker kills, {chaos.redis_restarts} Redis restart "
        f"(down {chaos.redis_down_s:.1f}s), {chaos.api_restarts} API restart\n"
        f"submissions: {submissions.unavailable} answered 503, {submissions.lost} unanswered, "
        f"{submissions.repeats} idempotent repeats ({submissions.stored_despite_503} after a 503)\n"
        f"{len(followers)} followers, all at the final state, after {reconnects} reconnects\n"
        f"kill to next attempt started (or failed): {figures(recoveries)}"
    )
    assert recoveries, "the kills hit running tasks"
    assert max(recoveries) <= settings.recovery_s


ROUNDS = 20
DELIVERY_MARGIN_S = 5.0  # the started event's `at` is what the bound is about; this only bounds the wait


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_killed_workers_task_runs_again_within_the_recovery_bound_20_times_over(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    group = Workers(settings, tmp_path)
    recoveries: list[float] = []
    try:
        await asyncio.to_thread(group.start, 2)
        put = await http.put("/api/task-types/demo.sleep", json={"max_attempts": 100})
        assert put.json()["max_attempts"] == 100
        task = await submit(http, "demo.sleep", seconds=3600, steps=3600)
        async with await watch(app, task["id"]) as ws:
            await ws.until(is_running, timeout_s=30)
            for attempt in range(1, ROUNDS + 1):
                running = await read_task(http, task["id"])
                assert (running["status"], running["attempts"]) == ("running", attempt)
                victim = group.running(running)
                killed_at = time.time()
                victim.kill()
                replacing = asyncio.create_task(asyncio.to_thread(group.start))
                frames = await ws.until(
                    event_is("task.started", attempt=attempt + 1),
                    timeout_s=settings.recovery_s + DELIVERY_MARGIN_S,
                )
                await replacing
                retrying = [f for f in frames if f.get("event") == "task.retrying"]
                assert [f["reason"] for f in retrying] == ["worker lost"]
                assert worker_pid(frames[-1]) != victim.pid
                recoveries.append(utc_time(frames[-1]["at"]).timestamp() - killed_at)
    finally:
        await asyncio.to_thread(group.stop_all)
    print(f"\nkill to rerun over {ROUNDS} kills: {figures(recoveries)}: {[round(r, 2) for r in recoveries]}")
    assert max(recoveries) <= settings.recovery_s


async def outbox_frames(client: Client, task_id: str, done: Callable[[list[Frame]], bool]) -> list[Frame]:
    """Frames the hub queued for `client` about `task_id`, until `done` holds for them."""
    frames: list[Frame] = []
    async with asyncio.timeout(15):
        while not done(frames):
            frame = json.loads(await client.outbox.get())
            if task_of(frame) == task_id:
                frames.append(frame)
    return frames


@pytest.mark.slow
async def test_a_resubscribed_hub_sends_no_event_past_a_gap(
    app: ServedApp, http: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    """An event published while the hub's subscription was down is missed. The hub then sends
    every task subscriber a fresh snapshot, but one subscriber after another: an event that
    arrives for a task whose turn has not come yet must wait for that snapshot, not go out
    after a gap."""
    tasks, _ = open_stores(settings, redis)
    hub = Hub(redis, tasks)  # on a client without retries: a lost subscription is noticed at once
    await hub.start(wait_s=5)

    async def hub_subscribed() -> bool:
        return hub.subscribed.is_set()

    try:
        await create_type(http, "ext")
        created = [await http.post("/api/tasks", json={"type": "ext", "parameters": {}}) for _ in range(301)]
        *others, target = [body_of(response, 201)["id"] for response in created]
        client = Client(ANONYMOUS, buffer=10_000)
        for task_id in [*others, target]:  # the target's turn comes last
            await hub.watch_task(client, task_id, None, subscribed_frame(Subscribe(task_id=task_id)))

        await redis.client_kill_filter(_type="pubsub")
        await eventually(hub_subscribed, False, 10)
        await tasks.change(target, TaskUpdate(metadata={"step": 2}))  # seq 2: nobody hears it
        await asyncio.wait_for(hub.subscribed.wait(), 10)
        await tasks.change(target, TaskUpdate(metadata={"step": 3}))  # seq 3: before the target's turn

        def resynced(frames: list[Frame]) -> bool:
            kinds = [f["type"] for f in frames]
            return kinds.count("snapshot") == 2 and max(seq_of(f) or 0 for f in frames) == 3

        frames = await outbox_frames(client, target, resynced)
    finally:
        await hub.stop()
    seen = [(str(f["type"]), seq) for f in frames if (seq := seq_of(f)) is not None]
    gaps = [(a, b) for (_, a), (kind, b) in itertools.pairwise(seen) if kind == "event" and b != a + 1]
    assert gaps == [], f"an event after a gap: {seen}"
