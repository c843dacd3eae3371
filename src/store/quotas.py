"""Per-principal quotas, counted in Redis so that they hold across every API instance: open
WebSocket connections, and task submissions per second. They apply when auth is on; with it
off every caller is the same anonymous admin, and a per-principal quota would be a global one.
"""

import asyncio
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobcast.errors import TooManyRequests
from jobcast.store import keys
from jobcast.store.scripts import register

log = logging.getLogger(__name__)

# An instance that dies without closing its sockets frees their slots this long after its
# last refresh; a live instance refreshes three times within it.
SLOT_TTL_MS = 30_000
RATE_WINDOW_S = 1


class ConnectionSlots:
    """At most `limit` open WebSockets per principal, over all API instances."""

    def __init__(self, redis: Redis, limit: int, ttl_ms: int = SLOT_TTL_MS) -> None:
        self.limit = limit
        self._ttl_ms = ttl_ms
        self._redis = redis
        self._take = register(redis, "take_slot")
        self._refresh = register(redis, "refresh_slots")
        self._instance = uuid.uuid4().hex[:12]
        self._held: dict[str, str] = {}  # slot id → its key
        self._count = 0

    async def take(self, principal_name: str) -> str | None:
        """A slot for a new connection of this principal; None when it holds `limit` already."""
        self._count += 1
        slot = f"{self._instance}:{self._count}"
        key = keys.connection_slots(principal_name)
        if not await self._take(keys=[key], args=[self.limit, self._ttl_ms, slot]):
            return None
        self._held[slot] = key
        return slot

    async def give_back(self, slot: str) -> None:
        """Free a closed connection's slot (if Redis cannot be reached, it expires on its own)."""
        key = self._held.pop(slot, None)
        if key is None:
            return
        try:
            await self._redis.zrem(key, slot)
        except RedisError as error:
            log.warning("could not free a connection slot (%s); it expires on its own", error)

    async def refresh_forever(self) -> None:
        """Keep this instance's slots alive while their connections are open."""
        while True:
            await asyncio.sleep(self._ttl_ms / 1000 / 3)
            held = dict(self._held)
            if not held:
                continue
            try:
                await self._refresh(keys=list(held.values()), args=[self._ttl_ms, *held])
            except RedisError as error:
                log.warning("could not refresh connection slots: %s", error)


class SubmissionRate:
    """At most `per_second` submissions per principal in each second, over all API instances."""

    def __init__(self, redis: Redis, per_second: int) -> None:
        self.per_second = per_second
        self._redis = redis

    async def admit(self, principal_name: str) -> None:
        """Count one submission; TooManyRequests when the principal is over its rate."""
        key = keys.submissions(principal_name, int(time.time()) // RATE_WINDOW_S)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * RATE_WINDOW_S)
            count, _ = await pipe.execute()
        if int(count) > self.per_second:
            raise TooManyRequests(
                f"at most {self.per_second} submissions per second per principal; retry in a second",
                retry_after_s=RATE_WINDOW_S,
            )
