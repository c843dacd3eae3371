"""Connecting to Redis, and what jobcast needs of it: it must never evict keys (a task, its job
or its history would silently vanish). AOF persistence is advised (docs/guarantees.md) but not
required."""

import dataclasses
import logging

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobcast.settings import Settings

log = logging.getLogger(__name__)

REQUIRED_POLICY = "noeviction"
API_RETRIES = 3
WORKER_RECONNECT_MAX_S = 2.0


def connect_redis(settings: Settings) -> Redis:
    """A request rides out a blip of a few hundred milliseconds; a longer outage is a 503."""
    return Redis.from_url(
        settings.redis_url_or_default(),
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=API_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def redis_settings(settings: Settings) -> RedisSettings:
    """Every command waits out a Redis restart or blip, reconnecting with backoff: a worker
    outlives its Redis, and its writes land once Redis is back."""
    return dataclasses.replace(
        RedisSettings.from_dsn(settings.redis_url_or_default()),
        conn_retries=0,
        retry=Retry(ExponentialBackoff(cap=WORKER_RECONNECT_MAX_S, base=0.05), retries=-1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


async def eviction_problem(redis: Redis) -> str | None:
    """Why this Redis is unfit for jobcast, or None. A Redis that hides CONFIG (some managed
    services do) is taken at its word."""
    try:
        config = await redis.config_get("maxmemory-policy")
    except ResponseError as error:
        log.warning("cannot read Redis maxmemory-policy (%s); make sure it is %s", error, REQUIRED_POLICY)
        return None
    policy = config.get("maxmemory-policy", REQUIRED_POLICY)
    if policy == REQUIRED_POLICY:
        return None
    return (
        f"Redis maxmemory-policy is {policy!r}: it would evict tasks and jobs under memory pressure. "
        f"Set `maxmemory-policy {REQUIRED_POLICY}` (see docs/guarantees.md)"
    )


async def warn_without_aof(redis: Redis) -> None:
    try:
        config = await redis.config_get("appendonly")
    except ResponseError:
        return
    if config.get("appendonly") == "no":
        log.warning("Redis runs without AOF: a Redis restart loses every task (see docs/guarantees.md)")


class UnfitRedis(RuntimeError):
    """Redis is configured so that jobcast would lose data: refuse to start."""


async def ensure_fit(redis: Redis) -> None:
    problem = await eviction_problem(redis)
    if problem is not None:
        raise UnfitRedis(problem)
    await warn_without_aof(redis)
