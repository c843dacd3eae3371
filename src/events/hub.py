"""The hub: one Redis subscription per API process, fanned out to every WebSocket client.

It reads the events and revocations channels and the snapshots a new watch starts from; the
fanout it extends decides who gets what.
"""

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobcast.auth.access import ensure_visible
from jobcast.errors import NotFound
from jobcast.events.client import Client, TaskWatch
from jobcast.events.fanout import Fanout
from jobcast.events.protocol import ErrorCode, error_frame
from jobcast.store import keys
from jobcast.store.tasks import TaskStore
from jobcast.store.tokens import TokenStore

log = logging.getLogger(__name__)

EVENTS_CHANNEL = keys.EVENTS_CHANNEL.encode()
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0


class Hub(Fanout):
    """The fanout fed from Redis: it reads the events and revocations channels and the snapshots
    new watches start from, and starts every watch again after an outage."""

    def __init__(self, redis: Redis, tasks: TaskStore, tokens: TokenStore | None = None) -> None:
        """`tokens`: with auth on, where to check after an outage that no revocation was missed."""
        super().__init__()
        self._redis = redis
        self._tasks = tasks
        self._tokens = tokens
        self._reader: asyncio.Task[None] | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()

    async def start(self, wait_s: float) -> None:
        """Start reading the events channel; wait up to `wait_s` for the first subscription."""
        self._reader = asyncio.create_task(self._read_forever(), name="hub-reader")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), wait_s)

    async def stop(self) -> None:
        for task in [self._reader, *self._resyncs]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def watch_task(self, client: Client, task_id: str, since: int | None, ack: str) -> None:
        """Subscribe, then snapshot, then stream: events that arrive while the snapshot is
        read are held and only those newer than it are sent. NotFound if the client may not
        see the task."""
        watch = self.add_watch(client, task_id)
        try:
            await self._snapshot(client, task_id, watch, since, ack)
        except BaseException:
            self.drop_watch(client, task_id, watch)
            raise

    async def _snapshot(
        self, client: Client, task_id: str, watch: TaskWatch, since: int | None, ack: str | None
    ) -> None:
        task = ensure_visible(client.principal, await self._tasks.get(task_id))
        self.prime(client, task, watch, since, ack)

    async def _read_forever(self) -> None:
        delay_s = RECONNECT_MIN_S
        while True:
            try:
                await self._read()
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if self.subscribed.is_set():
                    delay_s = RECONNECT_MIN_S  # it had worked: a new outage starts a new backoff
                log.warning("events subscription lost (%s); reconnecting in %.1fs", error, delay_s)
            self.subscribed.clear()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)

    async def _read(self) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(keys.EVENTS_CHANNEL, keys.REVOCATIONS_CHANNEL)
            async for message in pubsub.listen():
                events = message["channel"] == EVENTS_CHANNEL
                if message["type"] == "message" and events:
                    self.dispatch(message["data"])
                elif message["type"] == "message":
                    self.revoke(message["data"].decode(errors="replace"))
                elif message["type"] == "subscribe" and events:
                    # Also after redis-py reconnected on its own: events may have been missed.
                    self.subscribed.set()
                    self._spawn_resync()

    def _spawn_resync(self) -> None:
        """After (re)subscribing, events and revocations published meanwhile may be missing:
        every watch is primed again from a fresh snapshot, and every connection's token is
        checked again."""
        rewatched = self.rewatch_all()
        if rewatched or self._tokens is not None:
            task = asyncio.create_task(self._resync(rewatched))
            self._resyncs.add(task)
            task.add_done_callback(self._resyncs.discard)

    async def _resync(self, rewatched: list[tuple[Client, str, TaskWatch]]) -> None:
        if self._tokens is not None:
            try:
                self.close_revoked(await self._tokens.valid_digests(self.token_digests()))
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return  # lost again: the next subscription checks again
        for client, task_id, watch in rewatched:
            try:
                await self._snapshot(client, task_id, watch, None, None)
            except NotFound as error:
                self.drop_watch(client, task_id, watch)
                client.send(error_frame(ErrorCode.NOT_FOUND, error.detail))
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return  # lost again: the next subscription gives every watch a fresh start
