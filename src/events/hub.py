"""The hub: one Redis subscription per API process, fanned out to every WebSocket client.

Dispatch never awaits a client: each client has a bounded outbox drained by its own sender,
and a client whose outbox is full is closed with 1013 instead of being waited for.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src import keys
from src.access import Principal, can_see, ensure_visible, sees_tracebacks
from src.errors import NotFound
from src.events.counters import HubCounters
from src.events.envelope import NO_FRAME, Envelope, decode_envelope
from src.events.outbox import END_OF_STREAM, Outbox
from src.events.protocol import ErrorCode, error_frame, snapshot_frame
from src.task_store import TaskStore
from src.tasks import FINAL_EVENTS, TERMINAL, EventKind

log = logging.getLogger(__name__)

Group = tuple[str, str]  # ("type", name), ("owner", name) or ALL: the tasks a subscription covers
ALL: Group = ("all", "")

NORMAL = 1000
POLICY_VIOLATION = 1008
TRY_AGAIN = 1013
EVENTS_CHANNEL = keys.EVENTS_CHANNEL.encode()
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0
MISSED = "the server lost its event stream for a moment: events may be missing; reload what you show"


class TaskWatch:
    """A client's subscription to one task: events are held until its snapshot is sent."""

    __slots__ = ("held", "last_seq")

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.held: list[tuple[Envelope, str]] = []


class Client:
    """One WebSocket connection as the hub sees it: its subscriptions and its outbox. Slotted and
    without tasks or events of its own: an API process holds thousands of them."""

    __slots__ = (
        "close_code",
        "close_on_final",
        "close_reason",
        "end_code",
        "end_reason",
        "groups",
        "outbox",
        "peer_gone",
        "principal",
        "tasks",
    )

    def __init__(self, principal: Principal, buffer: int, *, close_on_final: bool = False) -> None:
        self.principal = principal
        self.outbox = Outbox(buffer)
        self.peer_gone = False
        self.tasks: dict[str, TaskWatch] = {}
        self.groups: set[Group] = set()
        self.close_on_final = close_on_final
        self.close_code: int | None = None
        self.close_reason = ""
        self.end_code = NORMAL
        self.end_reason = "task finished"

    def send(self, frame: str) -> None:
        """Queue a frame; a full outbox means the client cannot keep up: close it."""
        if self.close_code is not None:
            return
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(TRY_AGAIN, "client too slow: its buffer is full")

    def end(self, code: int = NORMAL, reason: str = "task finished") -> None:
        """Close with `code` once the frames already queued are sent."""
        self.end_code, self.end_reason = code, reason
        self.send(END_OF_STREAM)  # queued last: the sender closes once everything before it is sent

    def close(self, code: int, reason: str = "") -> None:
        """Close now, dropping whatever is still queued."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.outbox.close()

    def gone(self) -> None:
        """The peer went away (or stopped being read): nothing more to send it."""
        self.peer_gone = True
        self.outbox.close()

    @property
    def subscription_count(self) -> int:
        return len(self.tasks) + len(self.groups)


class Hub:
    def __init__(self, redis: Redis, tasks: TaskStore) -> None:
        self._redis = redis
        self._tasks = tasks
        self._by_task: defaultdict[str, set[Client]] = defaultdict(set)
        self._by_group: defaultdict[Group, set[Client]] = defaultdict(set)
        self._by_principal: defaultdict[str, set[Client]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()
        self.counters = HubCounters()

    @property
    def connections(self) -> int:
        """WebSocket connections open on this process."""
        return sum(len(clients) for clients in self._by_principal.values())

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
        watch = TaskWatch()
        client.tasks[task_id] = watch
        self._by_task[task_id].add(client)
        try:
            await self._prime(client, task_id, watch, since, ack)
        except BaseException:
            self._drop_watch(client, task_id, watch)
            raise

    def unwatch_task(self, client: Client, task_id: str) -> bool:
        watch = client.tasks.get(task_id)
        if watch is None:
            return False
        self._drop_watch(client, task_id, watch)
        return True

    def watch_group(self, client: Client, group: Group) -> None:
        """Subscribe to every visible task of a type, of an owner, or (ALL) every task."""
        client.groups.add(group)
        self._by_group[group].add(client)

    def unwatch_group(self, client: Client, group: Group) -> bool:
        if group not in client.groups:
            return False
        client.groups.discard(group)
        _discard_member(self._by_group, group, client)
        return True

    def attach(self, client: Client) -> None:
        """Know a new connection, so that revoking its principal's token can close it."""
        self._by_principal[client.principal.name].add(client)

    def revoke(self, principal_name: str) -> None:
        """The principal's token was revoked (on any API instance): close its connections."""
        for client in list(self._by_principal.get(principal_name, ())):
            client.close(POLICY_VIOLATION, "token revoked")

    def detach(self, client: Client) -> None:
        """Forget a client that went away."""
        if client.close_code == TRY_AGAIN:
            self.counters.slow_client_closes += 1
        _discard_member(self._by_principal, client.principal.name, client)
        for task_id, watch in list(client.tasks.items()):
            self._drop_watch(client, task_id, watch)
        for group in list(client.groups):
            self.unwatch_group(client, group)

    def dispatch(self, raw: bytes) -> None:
        """Deliver one published event to every client subscribed to it, once each."""
        try:
            envelope = decode_envelope(raw)
        except msgspec.DecodeError:  # not ours: anyone who can reach Redis can publish
            log.error("ignored a malformed message on %s", keys.EVENTS_CHANNEL)
            return
        self.counters.events_received += 1
        public = bytes(envelope.frame).decode()
        full = public if envelope.full_frame == NO_FRAME else bytes(envelope.full_frame).decode()
        sent = set(self._by_task.get(envelope.task_id, ()))
        for client in list(sent):
            self._deliver(client, envelope, full if sees_tracebacks(client.principal) else public)
        groups = (("type", envelope.task_type), ("owner", envelope.owner), ALL)
        for client in _members(self._by_group.get(group, ()) for group in groups):
            if client not in sent and can_see(client.principal, envelope.owner, envelope.task_type):
                sent.add(client)
                client.send(full if sees_tracebacks(client.principal) else public)
                self.counters.events_delivered += 1

    async def _prime(
        self, client: Client, task_id: str, watch: TaskWatch, since: int | None, ack: str | None
    ) -> None:
        task = ensure_visible(client.principal, await self._tasks.get(task_id))
        if client.tasks.get(task_id) is not watch:
            return  # unsubscribed or resubscribed while the snapshot was read
        if ack is not None:
            client.send(ack)
        if since != task.seq:
            client.send(snapshot_frame(task))
        watch.last_seq = task.seq
        held, watch.held = watch.held, []
        for envelope, frame in held:
            self._deliver(client, envelope, frame)
        if client.close_on_final and task.status in TERMINAL and watch.last_seq == task.seq:
            client.end()

    def _deliver(self, client: Client, envelope: Envelope, frame: str) -> None:
        watch = client.tasks.get(envelope.task_id)
        if watch is None:
            return
        if watch.last_seq is None:
            watch.held.append((envelope, frame))
            return
        if envelope.seq <= watch.last_seq:
            return  # already in the snapshot, or already sent
        watch.last_seq = envelope.seq
        client.send(frame)
        self.counters.events_delivered += 1
        if client.close_on_final and envelope.event in FINAL_EVENTS:
            client.end()
        elif envelope.event is EventKind.DELETED:
            self._drop_watch(client, envelope.task_id, watch)

    def _drop_watch(self, client: Client, task_id: str, watch: TaskWatch) -> None:
        if client.tasks.get(task_id) is watch:
            del client.tasks[task_id]
            _discard_member(self._by_task, task_id, client)

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
        """After (re)subscribing, events published meanwhile may be missing. Every task
        subscriber gets a fresh watch at once, so later events are held until its new snapshot;
        group subscribers, who have no snapshot, are told."""
        for group_clients in list(self._by_group.values()):
            for client in list(group_clients):
                client.send(error_frame(ErrorCode.EVENTS_MISSED, MISSED))
        rewatched: list[tuple[Client, str, TaskWatch]] = []
        for task_id, clients in self._by_task.items():
            for client in clients:
                watch = TaskWatch()
                client.tasks[task_id] = watch
                rewatched.append((client, task_id, watch))
        if rewatched:
            task = asyncio.create_task(self._resync(rewatched))
            self._resyncs.add(task)
            task.add_done_callback(self._resyncs.discard)

    async def _resync(self, rewatched: list[tuple[Client, str, TaskWatch]]) -> None:
        for client, task_id, watch in rewatched:
            try:
                await self._prime(client, task_id, watch, None, None)
            except NotFound as error:
                self._drop_watch(client, task_id, watch)
                client.send(error_frame(ErrorCode.NOT_FOUND, error.detail))
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return  # lost again: the next subscription gives every watch a fresh start


def _members(groups: Iterable[Iterable[Client]]) -> Iterable[Client]:
    for group in groups:
        yield from list(group)


def _discard_member(index: defaultdict[Any, set[Client]], key: Any, client: Client) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(client)
        if not members:
            del index[key]
