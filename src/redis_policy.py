"""What jobcast needs of its Redis: it must never evict keys (a task, its job or its history
would silently vanish). AOF persistence is advised (docs/guarantees.md) but not required."""

import logging

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

REQUIRED_POLICY = "noeviction"


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
