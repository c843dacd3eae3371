"""Worker liveness in Redis: each worker re-announces itself every `heartbeat_s`; its entries
expire after `heartbeat_ttl_s` without one. `workers_online` and /api/workers read them."""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from src import keys
from src.tasks import utc_now
from src.writes import encode

log = logging.getLogger(__name__)


class WorkerInfo(msgspec.Struct, kw_only=True):
    id: str
    hostname: str
    pid: int
    types: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    running: list[str]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Heartbeat:
    def __init__(
        self,
        redis: Redis,
        info: WorkerInfo,
        running: Callable[[], list[str]],
        *,
        interval_s: float,
        ttl_s: float,
    ) -> None:
        self._redis = redis
        self._info = info
        self._running = running
        self._interval_s = interval_s
        self._ttl_ms = int(ttl_s * 1000)

    async def beat(self) -> None:
        """Announce this worker and the types it serves, valid for one TTL."""
        now_ms = int(time.time() * 1000)
        expires_ms = now_ms + self._ttl_ms
        info = msgspec.structs.replace(self._info, heartbeat_at=utc_now(), running=self._running())
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.worker(info.id), encode(info), px=self._ttl_ms)
            pipe.zadd(keys.WORKERS, {info.id: expires_ms})
            pipe.zremrangebyscore(keys.WORKERS, "-inf", now_ms)
            for name in info.types:
                pipe.zadd(keys.type_workers(name), {info.id: expires_ms})
                pipe.zremrangebyscore(keys.type_workers(name), "-inf", now_ms)
            await pipe.execute()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except RedisError as error:
                log.warning("heartbeat failed: %s", error)
            await asyncio.sleep(self._interval_s)

    async def withdraw(self) -> None:
        """Say goodbye at a clean shutdown, so workers_online drops at once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.worker(self._info.id))
            pipe.zrem(keys.WORKERS, self._info.id)
            for name in self._info.types:
                pipe.zrem(keys.type_workers(name), self._info.id)
            await pipe.execute()
