"""Worker liveness in Redis: each worker's record and its place in the registries, valid for
one heartbeat TTL. Written from a worker's heartbeat thread (a blocking client), read by the
API (asyncio) and by `jobcast health worker` (blocking)."""

import time
from collections.abc import Iterable
from datetime import datetime

import msgspec
import redis
from redis.asyncio import Redis

from jobcast.store import keys
from jobcast.store.atomic import encode


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A live worker, as its last heartbeat described it (GET /api/workers)."""

    id: str
    hostname: str
    pid: int
    types: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    running: list[str]


decode_worker = msgspec.json.Decoder(WorkerInfo).decode


def announce(client: redis.Redis, info: WorkerInfo, held_jobs: Iterable[str], ttl_ms: int) -> None:
    """The worker and the types it serves are live for `ttl_ms`, and so are arq's in-progress
    marks of the jobs it holds (otherwise they outlive a killed worker by the longest timeout)."""
    now_ms = int(time.time() * 1000)
    expires_ms = now_ms + ttl_ms
    with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.worker(info.id), encode(info), px=ttl_ms)
        pipe.zadd(keys.WORKERS, {info.id: expires_ms})
        for name in info.types:
            pipe.zadd(keys.type_workers(name), {info.id: expires_ms})
            pipe.zremrangebyscore(keys.type_workers(name), "-inf", now_ms)
        for job_id in held_jobs:
            pipe.pexpire(keys.arq_in_progress(job_id), ttl_ms)
        pipe.execute()


def farewell(client: redis.Redis, info: WorkerInfo) -> None:
    """The worker stops serving, so workers_online drops at once. It stays in the registry:
    should it still hold tasks, the reconciler recovers them."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.worker(info.id))
        for name in info.types:
            pipe.zrem(keys.type_workers(name), info.id)
        pipe.execute()


async def live_workers(client: Redis) -> list[WorkerInfo]:
    """Every worker whose heartbeat has not expired, in id order."""
    ids = await client.zrangebyscore(keys.WORKERS, int(time.time() * 1000), "+inf")
    docs = await client.mget([keys.worker(i.decode()) for i in ids]) if ids else []
    return _decoded(docs)


def live_workers_now(client: redis.Redis) -> list[WorkerInfo]:
    """live_workers, for a caller without an event loop."""
    ids = client.zrangebyscore(keys.WORKERS, int(time.time() * 1000), "+inf")
    docs = client.mget([keys.worker(i.decode()) for i in ids]) if ids else []
    return _decoded(docs)


def _decoded(docs: list[bytes | None]) -> list[WorkerInfo]:
    workers = [decode_worker(doc) for doc in docs if doc is not None]  # None: said goodbye
    return sorted(workers, key=lambda worker: worker.id)
