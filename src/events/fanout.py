"""Who gets which event: the indexes of this process's subscriptions, and delivery to them.

No I/O here: the hub feeds it what it reads from Redis. Dispatch never awaits a client: each
client has a bounded outbox drained by its own sender, and a client whose outbox is full is
closed with 1013 instead of being waited for.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from jobcast.auth.access import can_see, sees_tracebacks
from jobcast.events.client import ALL, POLICY_VIOLATION, TRY_AGAIN, Client, Group, TaskWatch
from jobcast.events.protocol import ErrorCode, error_frame, event_frame, snapshot_frame
from jobcast.model.tasks import FINAL_EVENTS, TERMINAL, EventKind, Task
from jobcast.store import keys
from jobcast.store.envelope import NO_EVENT, Envelope, decode_envelope

log = logging.getLogger("jobcast.events.hub")

MISSED = "the server lost its event stream for a moment: events may be missing; reload what you show"


@dataclass
class HubCounters:
    """What this API process's hub has done: figures of one process, not of the system."""

    events_received: int = 0  # from the events channel
    events_delivered: int = 0  # event frames queued for WebSocket clients
    slow_client_closes: int = 0  # clients closed with 1013: their buffer was full


class Fanout:
    """This process's subscriptions, indexed by task, by group and by principal; `dispatch`
    hands each published event to the clients that may see it."""

    def __init__(self) -> None:
        self._by_task: defaultdict[str, set[Client]] = defaultdict(set)
        self._by_group: defaultdict[Group, set[Client]] = defaultdict(set)
        self._by_principal: defaultdict[str, set[Client]] = defaultdict(set)
        self.counters = HubCounters()

    @property
    def connections(self) -> int:
        """WebSocket connections open on this process."""
        return sum(len(clients) for clients in self._by_principal.values())

    def add_watch(self, client: Client, task_id: str) -> TaskWatch:
        """Subscribe to one task: its events are held until `prime` gives it its snapshot."""
        watch = TaskWatch()
        client.tasks[task_id] = watch
        self._by_task[task_id].add(client)
        return watch

    def unwatch_task(self, client: Client, task_id: str) -> bool:
        watch = client.tasks.get(task_id)
        if watch is None:
            return False
        self.drop_watch(client, task_id, watch)
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

    def token_digests(self) -> set[str]:
        """The tokens the open connections came with."""
        return {c.token_digest for clients in self._by_principal.values() for c in clients if c.token_digest}

    def close_revoked(self, valid_digests: set[str]) -> None:
        """Close every connection whose token is not among `valid_digests` any more."""
        for clients in list(self._by_principal.values()):
            for client in list(clients):
                if client.token_digest and client.token_digest not in valid_digests:
                    client.close(POLICY_VIOLATION, "token revoked")

    def detach(self, client: Client) -> None:
        """Forget a client that went away."""
        if client.close_code == TRY_AGAIN:
            self.counters.slow_client_closes += 1
        _discard_member(self._by_principal, client.principal.name, client)
        for task_id, watch in list(client.tasks.items()):
            self.drop_watch(client, task_id, watch)
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
        public = event_frame(bytes(envelope.event))
        full = public if envelope.full_event == NO_EVENT else event_frame(bytes(envelope.full_event))
        sent = set(self._by_task.get(envelope.task_id, ()))
        for client in list(sent):
            self._deliver(client, envelope, full if sees_tracebacks(client.principal) else public)
        groups = (("type", envelope.task_type), ("owner", envelope.owner), ALL)
        for client in _members(self._by_group.get(group, ()) for group in groups):
            if client not in sent and can_see(client.principal, envelope.owner, envelope.task_type):
                sent.add(client)
                client.send(full if sees_tracebacks(client.principal) else public)
                self.counters.events_delivered += 1

    def prime(self, client: Client, task: Task, watch: TaskWatch, since: int | None, ack: str | None) -> None:
        """The watch's snapshot was read: send it (unless the client has it at `since`), then the
        held events newer than it."""
        if client.tasks.get(task.id) is not watch:
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

    def rewatch_all(self) -> list[tuple[Client, str, TaskWatch]]:
        """Events may have been missed: every task watch starts again (its events held until a
        new snapshot), and group subscribers, who have no snapshot, are told."""
        for group_clients in list(self._by_group.values()):
            for client in list(group_clients):
                client.send(error_frame(ErrorCode.EVENTS_MISSED, MISSED))
        rewatched: list[tuple[Client, str, TaskWatch]] = []
        for task_id, clients in self._by_task.items():
            for client in clients:
                watch = TaskWatch()
                client.tasks[task_id] = watch
                rewatched.append((client, task_id, watch))
        return rewatched

    def drop_watch(self, client: Client, task_id: str, watch: TaskWatch) -> None:
        if client.tasks.get(task_id) is watch:
            del client.tasks[task_id]
            _discard_member(self._by_task, task_id, client)

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
        if client.close_on_final and envelope.kind in FINAL_EVENTS:
            client.end()
        elif envelope.kind is EventKind.DELETED:
            self.drop_watch(client, envelope.task_id, watch)


def _members(groups: Iterable[Iterable[Client]]) -> Iterable[Client]:
    for group in groups:
        yield from list(group)


def _discard_member(index: defaultdict[Any, set[Client]], key: Any, client: Client) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(client)
        if not members:
            del index[key]
