"""The live workers, as their heartbeats describe them (written by workers/heartbeat.py)."""

import time

import msgspec
from redis.asyncio import Redis

from src import keys
from src.workers.heartbeat import WorkerInfo

decode_worker = msgspec.json.Decoder(WorkerInfo).decode


async def live_workers(redis: Redis) -> list[WorkerInfo]:
    """Every worker whose heartbeat has not expired, in id order."""
    now_ms = int(time.time() * 1000)
    ids = await redis.zrangebyscore(keys.WORKERS, now_ms, "+inf")
    docs = await redis.mget([keys.worker(i.decode()) for i in ids]) if ids else []
    workers = [decode_worker(doc) for doc in docs if doc is not None]  # None: said goodbye
    return sorted(workers, key=lambda worker: worker.id)
