"""Raw arq on the bench's Redis: enqueue no-op jobs, run its worker, read its results."""

import asyncio
import sys
import time
from typing import Any

import redis
from arq.connections import RedisSettings, create_pool
from arq.constants import default_queue_name, in_progress_key_prefix, result_key_prefix
from arq.jobs import deserialize_result

from bench.harness import Child, Stack
from bench.jobcast_side import wait_for

ENQUEUE_CONCURRENCY = 50


async def _enqueue(redis_url: str, count: int, rate: float) -> list[float]:
    """Enqueue `count` no-op jobs (as fast as possible, or `rate` a second); when each was sent."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    sent: list[float] = []
    try:
        if rate:
            start = time.monotonic()
            for index in range(count):
                await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
                sent.append(time.time())
                await pool.enqueue_job("noop")
        else:
            remaining = iter(range(count))

            async def lane() -> None:
                for _ in remaining:
                    await pool.enqueue_job("noop")

            await asyncio.gather(*(lane() for _ in range(ENQUEUE_CONCURRENCY)))
    finally:
        await pool.aclose()
    return sent


def enqueue(redis_url: str, count: int, rate: float = 0.0) -> list[float]:
    return asyncio.run(_enqueue(redis_url, count, rate))


def start_worker(stack: Stack, max_jobs: int | None, poll_delay_s: float | None) -> Child:
    command = [sys.executable, "-m", "bench.arq_worker", stack.redis_url]
    if max_jobs is not None:
        command += ["--max-jobs", str(max_jobs)]
    if poll_delay_s is not None:
        command += ["--poll-delay", str(poll_delay_s)]
    return stack.spawn(f"arq-{len(stack.children)}", command)


def drained(client: redis.Redis) -> bool:
    return client.zcard(default_queue_name) == 0 and not client.keys(in_progress_key_prefix + "*")


def wait_drained(client: redis.Redis, count: int, timeout_s: float) -> bool:
    """Every job ran: the queue is empty and `count` results are stored."""
    return wait_for(lambda: drained(client) and len(client.keys(result_key_prefix + "*")) >= count, timeout_s)


def results(client: redis.Redis) -> list[Any]:
    """arq's stored results: each has enqueue_time, start_time and finish_time."""
    found = []
    names = client.keys(result_key_prefix + "*")
    for start in range(0, len(names), 1000):
        for raw in client.mget(names[start : start + 1000]):
            if raw is not None:
                found.append(deserialize_result(raw))
    return found
