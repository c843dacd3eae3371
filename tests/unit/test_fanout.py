"""The hub's fanout fed raw bytes, as they come off the events channel: who gets which frame, in
which order, with or without the traceback; no Redis and no sockets here."""

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from jobcast.events.client import ALL, POLICY_VIOLATION, TRY_AGAIN, Client
from jobcast.events.fanout import Fanout
from jobcast.model.changes import Finish, ReportProgress, Start
from jobcast.model.principals import Principal, Role
from jobcast.model.tasks import Event, Progress, Task, TaskStatus, new_task
from jobcast.model.transitions import apply
from jobcast.store.envelope import encode_envelope, envelope_for

AT = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN = Principal("root", Role.ADMIN)
ALICE = Principal("alice", Role.SUBMITTER)
BOB = Principal("bob", Role.SUBMITTER)
PDF_WORKER = Principal("pdf-worker", Role.WORKER, frozenset({"exports.pdf"}))


def a_task(owner: str = "alice", task_type: str = "exports.pdf") -> Task:
    task, _ = new_task(task_type=task_type, task_type_id=1, parameters={}, priority=10, metadata={},
                       owner=owner, max_attempts=1, at=AT)  # fmt: skip
    return task


def step(task: Task, change: Any) -> tuple[Task, bytes]:
    """The task after `change`, and the bytes its write published."""
    after, event = apply(task, change, AT)
    assert isinstance(event, Event)
    return after, encode_envelope(envelope_for(after, event))


def frames(client: Client) -> list[dict[str, Any]]:
    out = []
    while not client.outbox.empty():
        out.append(json.loads(client.outbox.get_nowait()))
    return out


def connected(fanout: Fanout, principal: Principal, buffer: int = 100) -> Client:
    client = Client(principal, buffer)
    fanout.attach(client)
    return client


def test_a_task_watch_holds_events_until_its_snapshot_then_sends_only_newer_ones() -> None:
    fanout = Fanout()
    client = connected(fanout, ALICE)
    task = a_task()
    watch = fanout.add_watch(client, task.id)
    running, started = step(task, Start(1, worker="w"))
    progressed, progress = step(running, ReportProgress(1, Progress(current=1, total=2)))
    fanout.dispatch(started)
    fanout.dispatch(progress)
    assert frames(client) == []  # held: the snapshot is not sent yet
    fanout.prime(client, running, watch, since=None, ack='{"type":"subscribed"}')
    sent = frames(client)
    assert [f["type"] for f in sent] == ["subscribed", "snapshot", "event"]
    assert sent[1]["task"]["seq"] == running.seq
    assert (sent[2]["event"], sent[2]["seq"]) == ("task.progress", progressed.seq)  # not the start again
    fanout.dispatch(progress)
    assert frames(client) == []  # a repeat of a seq already sent is dropped


def test_a_traceback_reaches_admins_only() -> None:
    fanout = Fanout()
    admin, owner = connected(fanout, ADMIN), connected(fanout, ALICE)
    running, _ = step(a_task(), Start(1, worker="w"))
    for client in (admin, owner):
        fanout.prime(client, running, fanout.add_watch(client, running.id), since=running.seq, ack=None)
    _, failed = step(
        running, Finish(1, TaskStatus.FAILED, error_message="boom", traceback="Traceback (most recent...")
    )
    fanout.dispatch(failed)
    (to_admin,), (to_owner,) = frames(admin), frames(owner)
    assert to_admin["traceback"].startswith("Traceback")
    assert "traceback" not in to_owner
    assert {k: v for k, v in to_admin.items() if k != "traceback"} == to_owner


def test_group_subscribers_get_what_they_may_see_once_each() -> None:
    fanout = Fanout()
    everything, alices, bobs, pdfs = (connected(fanout, p) for p in (ADMIN, ALICE, BOB, PDF_WORKER))
    fanout.watch_group(everything, ALL)
    fanout.watch_group(everything, ("owner", "alice"))  # two groups, one frame
    fanout.watch_group(alices, ("owner", "alice"))
    fanout.watch_group(bobs, ("owner", "alice"))  # another owner's tasks do not exist for bob
    fanout.watch_group(pdfs, ("type", "exports.pdf"))
    _, started = step(a_task(), Start(1, worker="w"))
    fanout.dispatch(started)
    assert [len(frames(c)) for c in (everything, alices, bobs, pdfs)] == [1, 1, 0, 1]
    assert fanout.counters.events_received == 1
    assert fanout.counters.events_delivered == 3


def test_bytes_that_are_no_envelope_are_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    fanout = Fanout()
    client = connected(fanout, ADMIN)
    fanout.watch_group(client, ALL)
    with caplog.at_level(logging.ERROR):
        for garbage in (b"", b"not json", b"{}", b'{"task_id": 1}', msgspec.json.encode([1, 2])):
            fanout.dispatch(garbage)
    assert frames(client) == []
    assert fanout.counters.events_received == 0
    assert caplog.text.count("ignored a malformed message") == 5


def test_a_client_whose_outbox_is_full_is_closed_not_waited_for() -> None:
    fanout = Fanout()
    slow = connected(fanout, ADMIN, buffer=2)
    fanout.watch_group(slow, ALL)
    task, started = step(a_task(), Start(1, worker="w"))
    fanout.dispatch(started)
    for current in (1, 2):
        task, progressed = step(task, ReportProgress(1, Progress(current=current)))
        fanout.dispatch(progressed)  # the third frame: more than the buffer holds
    assert slow.close_code == TRY_AGAIN
    fanout.detach(slow)
    assert fanout.counters.slow_client_closes == 1
    assert fanout.connections == 0


def test_revoking_a_principal_closes_its_connections_only() -> None:
    fanout = Fanout()
    alice_one, alice_two, bob = (connected(fanout, p) for p in (ALICE, ALICE, BOB))
    fanout.revoke("alice")
    assert (alice_one.close_code, alice_two.close_code, bob.close_code) == (
        POLICY_VIOLATION,
        POLICY_VIOLATION,
        None,
    )


def test_after_a_lost_stream_watches_start_over_and_groups_are_told() -> None:
    fanout = Fanout()
    watcher, grouped = connected(fanout, ALICE), connected(fanout, ADMIN)
    task = a_task()
    first = fanout.add_watch(watcher, task.id)
    fanout.prime(watcher, task, first, since=task.seq, ack=None)
    fanout.watch_group(grouped, ALL)
    ((client, task_id, watch),) = fanout.rewatch_all()
    assert (client, task_id) == (watcher, task.id)
    assert watch is not first
    assert watch.last_seq is None  # its events are held again until a fresh snapshot
    assert [f["code"] for f in frames(grouped)] == ["events_missed"]


async def test_a_closed_outbox_ends_its_sender() -> None:
    client = Client(ALICE, 10)
    getter = asyncio.create_task(client.outbox.get())
    await asyncio.sleep(0)
    client.close(POLICY_VIOLATION, "token revoked")
    assert await asyncio.wait_for(getter, 5) == ""


def test_connections_whose_token_is_no_longer_valid_are_closed() -> None:
    fanout = Fanout()
    kept, revoked, no_token = (
        Client(ALICE, 10, token_digest="a"),
        Client(ALICE, 10, token_digest="b"),
        Client(BOB, 10),
    )
    for client in (kept, revoked, no_token):
        fanout.attach(client)
    assert fanout.token_digests() == {"a", "b"}
    fanout.close_revoked({"a"})
    assert [c.close_code for c in (kept, revoked, no_token)] == [None, POLICY_VIOLATION, None]
