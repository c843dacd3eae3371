"""Helpers for benches of jobcast itself: submit through the HTTP load generator, read the
stored task records, count Redis commands, wait on Redis without spinning."""

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import psutil
import redis

from bench.harness import Generator, Stack, cpu_s_of, generators
from jobcast.model.tasks import Task
from jobcast.store import keys

decode_task = msgspec.json.Decoder(Task).decode
NOOP_BODY = json.dumps({"type": "bench.noop", "parameters": {}})


def declare_types(stack: Stack) -> None:
    """The bench task types exist once a worker serving them has started; it is stopped again."""
    stack.stop(stack.worker("bench.tasks"))


def submit(port: int, count: int, *, body: str = NOOP_BODY, connections: int = 8, rate: float = 0.0,
           keep_latencies: bool = False) -> dict[str, Any]:  # fmt: skip
    """Submit `count` tasks with the HTTP load generator: its figures (`cpu_s`: its own CPU time)."""
    args = [str(port), "--body", body, "--count", str(count), "--connections", str(connections)]
    if rate:
        args += ["--rate", str(rate)]
    if keep_latencies:
        args.append("--keep-latencies")
    with generators(Generator("bench.http_load", *args)) as (load,):
        load.ready()
        load.go()
        return load.result()


def completed_count(client: redis.Redis) -> int:
    return int(client.zcard(keys.task_index("completed")))


def wait_for(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def tasks(client: redis.Redis, status: str = keys.ANY) -> list[Task]:
    """Every stored task (of a status)."""
    ids = client.zrange(keys.task_index(status), 0, -1)
    found: list[Task] = []
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for task_id in ids[start : start + 1000]:
            pipe.hget(keys.task(task_id.decode()), "doc")
        found += [decode_task(doc) for doc in pipe.execute() if doc is not None]
    return found


def seconds(at: datetime | None) -> float:
    assert at is not None
    return at.timestamp()


def command_calls(client: redis.Redis) -> dict[str, int]:
    """INFO commandstats: calls per command since Redis started (or since CONFIG RESETSTAT)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    return {name: calls for name, calls in sorted(delta.items()) if calls and name not in ("info",)}


def process_cpu_s(pid: int) -> float:
    return cpu_s_of(psutil.Process(pid))


def timeline(moments_s: list[float], bin_s: float = 0.1) -> list[int]:
    """How many of `moments_s` fall in each `bin_s` from the first one."""
    if not moments_s:
        return []
    start = min(moments_s)
    bins = [0] * (int((max(moments_s) - start) / bin_s) + 1)
    for moment in moments_s:
        bins[int((moment - start) / bin_s)] += 1
    return bins
