"""/ws and /ws/tasks/{id} (CONTRACT.md §4) through a served app and the real `websockets` client.

Tasks are of external types, so the tests drive every event themselves over HTTP; nothing here
needs a worker. Every wait is bounded and synchronised on frames, never on time.
"""

import asyncio
import secrets
import socket
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import create_type, history, read_task
from tests.helpers.wsclient import WAIT_S, Frame, WsClient, is_final

MAX_FRAME_BYTES = 64 * 1024
MAX_SUBSCRIPTIONS = 1000


# --- helpers -----------------------------------------------------------------------------------


async def new_type(http: httpx.AsyncClient) -> str:
    """A fresh external task type; its name."""
    name = f"ext.{secrets.token_hex(6)}"
    await create_type(http, name)
    return name


async def external_task(http: httpx.AsyncClient, type_name: str, **fields: Any) -> Frame:
    response = await http.post("/api/tasks", json={"type": type_name, **fields})
    assert response.status_code == 201, response.text
    task: Frame = response.json()
    return task


async def update(http: httpx.AsyncClient, task_id: str, **fields: Any) -> Frame:
    response = await http.put(f"/api/tasks/{task_id}", json=fields)
    assert response.status_code == 200, response.text
    task: Frame = response.json()
    return task


async def send(ws: WsClient, **frame: Any) -> None:
    await asyncio.wait_for(ws.send(**frame), WAIT_S)


async def send_raw(ws: WsClient, data: str | bytes) -> None:
    await asyncio.wait_for(ws.connection.send(data), WAIT_S)


async def expect(ws: WsClient, kind: str) -> Frame:
    """The next frame, which must be of type `kind`."""
    frame = await ws.recv()
    assert frame["type"] == kind, frame
    return frame


async def subscribe(ws: WsClient, **target: Any) -> None:
    """Subscribe and check the `subscribed` frame echoes exactly the keys sent."""
    await send(ws, op="subscribe", **target)
    assert await ws.recv() == {"type": "subscribed", "subscription": target}


async def watch(ws: WsClient, task_id: str) -> Frame:
    """Subscribe to one task; its snapshot's task."""
    await subscribe(ws, task_id=task_id)
    task: Frame = (await expect(ws, "snapshot"))["task"]
    return task


async def expect_event(ws: WsClient, task_id: str, seq: int) -> Frame:
    frame = await expect(ws, "event")
    assert (frame["task_id"], frame["seq"]) == (task_id, seq), frame
    return frame


async def assert_alive(ws: WsClient) -> None:
    """The connection is open and answering: a ping gets the next frame, a pong."""
    await send(ws, op="ping")
    assert await ws.recv() == {"type": "pong"}


def assert_error(frame: Frame, *codes: str) -> None:
    assert frame["type"] == "error", frame
    assert frame["code"] in codes, frame
    assert isinstance(frame["detail"], str), frame
    assert len(frame["detail"]) >= 10, frame  # a sentence, not a bare code


async def drain(ws: WsClient, timeout_s: float = WAIT_S) -> tuple[list[Frame], int | None]:
    """Every frame until the server closes, and its close code."""
    frames = await ws.rest(timeout_s)
    return frames, ws.connection.close_code


async def connect_small_window(app: ServedApp, **options: Any) -> WsClient:
    """A client whose kernel receive buffer is small and fixed (no autotuning), so that a client
    that stops reading makes the server's side fill after a bounded number of bytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # before connect: sets the window
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", app.port)), WAIT_S)
    return await WsClient.connect(app.ws_url + "/ws", sock=sock, **options)


def event_body(frame: Frame) -> Frame:
    """An `event` frame as the event itself, the shape GET /events returns."""
    assert frame["type"] == "event", frame
    return {name: value for name, value in frame.items() if name != "type"}


def assert_stream_matches(frames: list[Frame], after_seq: int, events: list[Frame]) -> None:
    """`frames` are exactly the stored events after `after_seq`: in order, none missing, none twice."""
    assert [event_body(frame) for frame in frames] == events[after_seq:]
    seqs = [frame["seq"] for frame in frames]
    assert seqs == list(range(after_seq + 1, after_seq + 1 + len(frames)))


async def subscribed_snapshot_events(ws: WsClient, task_id: str) -> tuple[Frame, list[Frame]]:
    """After subscribing to a task: the snapshot's task and the event frames up to the final one."""
    assert await ws.recv() == {"type": "subscribed", "subscription": {"task_id": task_id}}
    snapshot: Frame = (await expect(ws, "snapshot"))["task"]
    if snapshot["status"] in {"completed", "failed", "cancelled"}:
        return snapshot, []
    return snapshot, await ws.until(is_final)


# --- subscribe by task: subscribed, snapshot, events -----------------------------------------------


async def test_task_subscription_sends_subscribed_then_snapshot_then_every_event(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind, parameters={"n": 1}, metadata={"who": "test"})
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        snapshot = await watch(ws, task["id"])
        assert snapshot == await read_task(http, task["id"])
        assert snapshot["seq"] == 1

        await update(http, task["id"], status="running")
        await update(http, task["id"], progress={"current": 1, "total": 4, "message": "one"})
        await update(http, task["id"], progress={"current": 3, "total": 4})
        await update(http, task["id"], status="failed", error_message="boom")
        response = await http.post(f"/api/tasks/{task['id']}/retry")
        assert response.status_code == 200, response.text
        await update(http, task["id"], status="running")
        await update(http, task["id"], metadata={"who": "test", "more": True})
        await update(http, task["id"], status="completed", result={"rows": [1, 2, 3]})
        frames = await ws.until(lambda frame: frame.get("event") == "task.completed")

    kinds = [frame["event"] for frame in frames]
    assert kinds == [
        "task.started",
        "task.progress",
        "task.progress",
        "task.failed",
        "task.retrying",
        "task.started",
        "task.updated",
        "task.completed",
    ]
    assert_stream_matches(frames, 1, await history(http, task["id"]))
    assert frames[1]["progress"] == {"current": 1, "total": 4, "percent": 25.0, "message": "one"}
    assert frames[3]["error_message"] == "boom"
    assert frames[-1]["result"] == {"rows": [1, 2, 3]}
    assert frames[-1]["status"] == "completed"


async def test_subscribers_joining_during_a_burst_get_every_later_event_once_in_order(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    """Subscribe, snapshot and stream race with concurrent writers; whatever seq the snapshot
    has, the events after it are exactly the stored ones after it."""
    kind = await new_type(http)
    task = await external_task(http, kind)
    await update(http, task["id"], status="running")
    clients = [await WsClient.connect(app.ws_url + "/ws") for _ in range(4)]
    try:
        for batch, ws in enumerate(clients):
            writes = [
                update(http, task["id"], progress={"current": batch * 10 + i, "total": 100})
                for i in range(10)
            ]
            await asyncio.gather(*writes[:5], send(ws, op="subscribe", task_id=task["id"]), *writes[5:])
        await update(http, task["id"], status="completed", result="done")
        outcomes = [await subscribed_snapshot_events(ws, task["id"]) for ws in clients]
    finally:
        for ws in clients:
            await ws.close()

    events = await history(http, task["id"])
    assert [event["seq"] for event in events] == list(range(1, 44))
    for snapshot, frames in outcomes:
        assert snapshot["status"] == events[snapshot["seq"] - 1]["status"]
        assert_stream_matches(frames, snapshot["seq"], events)
        assert frames[-1]["seq"] == 43


async def test_overlapping_subscriptions_deliver_each_event_once(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await subscribe(ws, all=True)
        await subscribe(ws, type=kind)
        await subscribe(ws, owner="me")
        await watch(ws, task["id"])
        await update(http, task["id"], status="running")
        await update(http, task["id"], progress={"current": 1, "total": 2})
        await update(http, task["id"], status="completed", result=1)
        frames = await ws.until(is_final)
    assert_stream_matches(frames, 1, await history(http, task["id"]))


# --- since ----------------------------------------------------------------------------------------


async def test_since_equal_to_current_seq_sends_no_snapshot(app: ServedApp, http: httpx.AsyncClient) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    current = await update(http, task["id"], status="running")
    assert current["seq"] == 2
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await subscribe(ws, task_id=task["id"], since=2)
        await update(http, task["id"], progress={"current": 1, "total": 2})
        frame = await expect(ws, "event")  # not a snapshot
        assert frame["seq"] == 3
        assert frame["event"] == "task.progress"


async def test_since_behind_sends_the_current_state_not_a_replay(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    await update(http, task["id"], status="running")
    await update(http, task["id"], progress={"current": 1, "total": 3})
    await update(http, task["id"], progress={"current": 2, "total": 3})
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        for since in (0, 1, 3):
            await subscribe(ws, task_id=task["id"], since=since)
            snapshot = (await expect(ws, "snapshot"))["task"]
            assert snapshot == await read_task(http, task["id"])
            assert snapshot["seq"] == 4
        await update(http, task["id"], progress={"current": 3, "total": 3})
        await expect_event(ws, task["id"], 5)  # straight on from the snapshot: no replay of 2..4
        await assert_alive(ws)  # and only once, though subscribed three times


async def test_resubscribing_with_the_last_seen_seq_after_a_disconnect_loses_nothing(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await watch(ws, task["id"])
        await update(http, task["id"], status="running")
        await update(http, task["id"], progress={"current": 1, "total": 2})
        last_seen = (await ws.until(lambda frame: frame.get("seq") == 3))[-1]["seq"]

    await update(http, task["id"], progress={"current": 2, "total": 2, "message": "almost"})
    await update(http, task["id"], status="completed", result={"answer": 42})

    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await subscribe(ws, task_id=task["id"], since=last_seen)
        snapshot = (await expect(ws, "snapshot"))["task"]
        assert snapshot == await read_task(http, task["id"])
        assert (snapshot["seq"], snapshot["status"], snapshot["result"]) == (5, "completed", {"answer": 42})

        # Caught up: resubscribing with the snapshot's seq sends no snapshot, only what follows.
        await subscribe(ws, task_id=task["id"], since=5)
        await update(http, task["id"], metadata={"note": "after"})
        frame = await expect_event(ws, task["id"], 6)
        assert frame["event"] == "task.updated"


# --- subscribe by type, owner and all ----------------------------------------------------------------


async def test_type_subscription_gets_events_of_that_type_only(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    wanted, other = await new_type(http), await new_type(http)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await subscribe(ws, type=wanted)
        ignored = await external_task(http, other)
        await update(http, ignored["id"], status="running")
        task = await external_task(http, wanted)
        await update(http, ignored["id"], status="completed")
        await update(http, task["id"], status="running")
        await update(http, task["id"], status="completed", result="ok")
        # Events are published in order on one channel: any event of `other` would come first.
        frames = await ws.until(is_final)
    assert all(frame["task_id"] == task["id"] for frame in frames), frames
    assert_stream_matches(frames, 0, await history(http, task["id"]))


async def test_owner_me_subscription_gets_the_callers_tasks_of_every_type(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    first, second = await new_type(http), await new_type(http)
    async with (
        await WsClient.connect(app.ws_url + "/ws") as mine,
        await WsClient.connect(app.ws_url + "/ws") as theirs,
    ):
        await subscribe(mine, owner="me")
        marker = await external_task(http, first)
        await subscribe(theirs, owner="somebody-else")  # auth is off: the caller is an admin
        await watch(theirs, marker["id"])
        one = await external_task(http, first)
        two = await external_task(http, second)
        await update(http, two["id"], status="running")
        await update(http, marker["id"], status="running")

        frames = await mine.until(lambda frame: frame.get("task_id") == marker["id"] and frame["seq"] == 2)
        assert [(frame["task_id"], frame["event"]) for frame in frames] == [
            (marker["id"], "task.created"),
            (one["id"], "task.created"),
            (two["id"], "task.created"),
            (two["id"], "task.started"),
            (marker["id"], "task.started"),
        ]
        # Nothing of anonymous's other tasks reached the subscriber to another owner.
        await expect_event(theirs, marker["id"], 2)


async def test_all_subscription_gets_every_task(app: ServedApp, http: httpx.AsyncClient) -> None:
    first, second = await new_type(http), await new_type(http)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await subscribe(ws, all=True)
        one = await external_task(http, first)
        two = await external_task(http, second)
        await update(http, one["id"], status="completed", result=1)
        response = await http.delete(f"/api/tasks/{two['id']}")
        assert response.status_code == 204, response.text
        frames = await ws.until(lambda frame: frame.get("event") == "task.deleted")
    assert [(frame["task_id"], frame["event"]) for frame in frames] == [
        (one["id"], "task.created"),
        (two["id"], "task.created"),
        (one["id"], "task.completed"),
        (two["id"], "task.deleted"),
    ]


async def test_subscribing_to_an_unknown_type_is_an_error(app: ServedApp) -> None:
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await send(ws, op="subscribe", type="no.such.type")
        frame = await ws.recv()
        assert_error(frame, "not_found")
        assert "not found" in frame["detail"]
        await assert_alive(ws)


async def test_subscribing_to_an_unknown_task_is_an_error(app: ServedApp) -> None:
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await send(ws, op="subscribe", task_id="no-such-task")
        frame = await ws.recv()
        assert_error(frame, "not_found")
        assert "not found" in frame["detail"]
        await assert_alive(ws)
        # The failed subscription left nothing behind: there is nothing to unsubscribe.
        await send(ws, op="unsubscribe", task_id="no-such-task")
        assert_error(await ws.recv(), "not_subscribed")


# --- unsubscribe ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["task", "type", "owner", "all"])
async def test_unsubscribe_stops_the_events(app: ServedApp, http: httpx.AsyncClient, target: str) -> None:
    kind, marker_kind = await new_type(http), await new_type(http)
    task = await external_task(http, kind)
    marker = await external_task(http, marker_kind)
    keys: dict[str, Any] = {
        "task": {"task_id": task["id"]},
        "type": {"type": kind},
        "owner": {"owner": "me"},
        "all": {"all": True},
    }[target]
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await subscribe(ws, **keys)
        if target == "task":
            await expect(ws, "snapshot")
        await send(ws, op="unsubscribe", **keys)
        assert await ws.recv() == {"type": "unsubscribed", "subscription": keys}
        await watch(ws, marker["id"])

        await update(http, task["id"], status="running")
        await update(http, task["id"], status="completed")
        await update(http, marker["id"], status="running")
        # Had the task's events still been sent, they would come before the marker's.
        await expect_event(ws, marker["id"], 2)
        await assert_alive(ws)


async def test_unsubscribing_what_is_not_subscribed_is_an_error(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        for keys in ({"task_id": task["id"]}, {"type": kind}, {"owner": "me"}, {"all": True}):
            await send(ws, op="unsubscribe", **keys)
            assert_error(await ws.recv(), "not_subscribed")
        await subscribe(ws, type=kind)
        await send(ws, op="unsubscribe", type=kind)
        await expect(ws, "unsubscribed")
        await send(ws, op="unsubscribe", type=kind)  # twice
        assert_error(await ws.recv(), "not_subscribed")
        await assert_alive(ws)


async def test_ping_gets_pong(app: ServedApp) -> None:
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        for _ in range(3):
            await assert_alive(ws)


# --- bad frames -------------------------------------------------------------------------------------

NESTING = 30_000  # deep, yet under the 64 KiB frame limit
BAD_FRAMES: list[tuple[str, str | bytes, set[str]]] = [
    ("not-json", "hello there", {"invalid_json"}),
    ("empty", "", {"invalid_json"}),
    ("truncated-object", '{"op": "ping"', {"invalid_json"}),
    ("truncated-array", "[1, 2,", {"invalid_json", "invalid_frame"}),
    ("truncated-after-op", '{"op": "subscribe", "task_id": 5,', {"invalid_json", "invalid_frame"}),
    ("array", "[]", {"invalid_frame"}),
    ("string", '"ping"', {"invalid_frame"}),
    ("number", "42", {"invalid_frame"}),
    ("null", "null", {"invalid_frame"}),
    ("unknown-op", '{"op": "dance"}', {"unknown_op"}),
    ("missing-op", '{"task_id": "abc"}', {"invalid_frame"}),
    ("null-op", '{"op": null}', {"unknown_op", "invalid_frame"}),
    ("number-op", '{"op": 7}', {"unknown_op", "invalid_frame"}),
    ("list-op", '{"op": ["subscribe"]}', {"unknown_op", "invalid_frame"}),
    ("object-op", '{"op": {"name": "ping"}}', {"unknown_op", "invalid_frame"}),
    ("subscribe-nothing", '{"op": "subscribe"}', {"invalid_frame"}),
    ("unsubscribe-nothing", '{"op": "unsubscribe"}', {"invalid_frame"}),
    ("two-targets", '{"op": "subscribe", "task_id": "abc", "type": "t"}', {"invalid_frame"}),
    ("all-and-owner", '{"op": "subscribe", "all": true, "owner": "me"}', {"invalid_frame"}),
    ("since-without-task", '{"op": "subscribe", "type": "t", "since": 1}', {"invalid_frame"}),
    ("all-false", '{"op": "subscribe", "all": false}', {"invalid_frame"}),
    ("task-id-number", '{"op": "subscribe", "task_id": 12}', {"invalid_frame"}),
    ("task-id-empty", '{"op": "subscribe", "task_id": ""}', {"invalid_frame"}),
    ("type-list", '{"op": "subscribe", "type": ["a"]}', {"invalid_frame"}),
    ("all-string", '{"op": "subscribe", "all": "yes"}', {"invalid_frame"}),
    ("since-string", '{"op": "subscribe", "task_id": "abc", "since": "3"}', {"invalid_frame"}),
    ("since-negative", '{"op": "subscribe", "task_id": "abc", "since": -1}', {"invalid_frame"}),
    ("since-float", '{"op": "subscribe", "task_id": "abc", "since": 2.5}', {"invalid_frame"}),
    ("unknown-field", '{"op": "subscribe", "task_id": "abc", "extra": 1}', {"invalid_frame"}),
    ("ping-unknown-field", '{"op": "ping", "id": 1}', {"invalid_frame"}),
    ("huge-float", '{"op": "subscribe", "task_id": "abc", "since": 1e999}', {"invalid_frame"}),
    ("huge-integer-task-id", '{"op": "subscribe", "task_id": 1' + "0" * 400 + "}", {"invalid_frame"}),
    ("huge-integer-alone", "1" + "0" * 400, {"invalid_frame", "invalid_json"}),
    ("nested-array", "[" * NESTING + "]" * NESTING, {"invalid_frame", "invalid_json"}),
    (
        "nested-in-field",
        '{"op": "subscribe", "task_id": ' + "[" * NESTING + "]" * NESTING + "}",
        {"invalid_frame", "invalid_json"},
    ),
    ("nested-objects", '{"a":' * 10_000 + "1" + "}" * 10_000, {"invalid_frame", "invalid_json"}),
    ("binary", b'{"op": "ping"}', {"binary_frame"}),
]


@pytest.mark.parametrize(
    ("data", "codes"), [(d, c) for _, d, c in BAD_FRAMES], ids=[i for i, _, _ in BAD_FRAMES]
)
async def test_a_bad_frame_gets_an_error_and_the_connection_stays_open(
    app: ServedApp, data: str | bytes, codes: set[str]
) -> None:
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await send_raw(ws, data)
        assert_error(await ws.recv(), *codes)
        await assert_alive(ws)
        await send_raw(ws, data)  # and again: the session goes on
        assert_error(await ws.recv(), *codes)
        await assert_alive(ws)


@pytest.mark.parametrize("server_compression", [False, True])
@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_a_frame_of_64_kib_is_read_and_a_larger_one_closes_with_1009(
    settings: Settings, compression: str | None, server_compression: bool
) -> None:
    async with (
        ServedApp(msgspec.structs.replace(settings, ws_compression=server_compression)) as app,
        await WsClient.connect(app.ws_url + "/ws", compression=compression) as ws,
    ):
        padded = '{"op": "ping"' + " " * (MAX_FRAME_BYTES - 14) + "}"
        assert len(padded.encode()) == MAX_FRAME_BYTES
        await send_raw(ws, padded)
        assert await ws.recv() == {"type": "pong"}
        await send_raw(ws, padded + " ")
        frames, code = await drain(ws)
    assert frames == []
    assert code == 1009


# --- the subscription limit ----------------------------------------------------------------------------


async def test_more_than_1000_subscriptions_is_an_error_and_the_connection_stays_open(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    # Admins may watch any owner, so most of the 1000 cost no records at all.
    others = [{"owner": f"owner-{i}"} for i in range(MAX_SUBSCRIPTIONS - 4)]
    targets = [{"all": True}, {"type": kind}, {"task_id": task["id"]}, {"owner": "me"}, *others]
    assert len(targets) == MAX_SUBSCRIPTIONS
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        for start in range(0, len(targets), 100):
            batch = targets[start : start + 100]
            for keys in batch:
                await send(ws, op="subscribe", **keys)
            frames = await ws.until(lambda frame, last=batch[-1]: frame.get("subscription") == last)
            acks = [frame for frame in frames if frame["type"] != "snapshot"]
            assert acks == [{"type": "subscribed", "subscription": keys} for keys in batch]

        await send(ws, op="subscribe", owner="one-too-many")
        assert_error(await ws.recv(), "too_many_subscriptions")
        other_task = await external_task(http, kind)
        assert (await expect_event(ws, other_task["id"], 1))["event"] == "task.created"
        await send(ws, op="subscribe", task_id=other_task["id"])
        assert_error(await ws.recv(), "too_many_subscriptions")
        await assert_alive(ws)

        # Repeating one it has is not one more.
        await subscribe(ws, type=kind)
        # Making room lets the next one in.
        await send(ws, op="unsubscribe", owner="owner-0")
        await expect(ws, "unsubscribed")
        await subscribe(ws, owner="one-too-many")
        await send(ws, op="subscribe", owner="owner-0")
        assert_error(await ws.recv(), "too_many_subscriptions")

        # The subscriptions it has still work: one event, once, though four of them match.
        await update(http, task["id"], status="running")
        await expect_event(ws, task["id"], 2)
        await assert_alive(ws)


# --- deletion ------------------------------------------------------------------------------------------


async def test_a_deleted_task_sends_task_deleted_to_its_subscribers(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    await update(http, task["id"], status="running")
    async with (
        await WsClient.connect(app.ws_url + "/ws") as by_task,
        await WsClient.connect(app.ws_url + "/ws") as by_type,
    ):
        await watch(by_task, task["id"])
        await subscribe(by_type, type=kind)
        response = await http.delete(f"/api/tasks/{task['id']}")
        assert response.status_code == 204, response.text
        for ws in (by_task, by_type):
            frame = await expect_event(ws, task["id"], 3)
            assert frame["event"] == "task.deleted"
            assert frame["status"] == "cancelled"  # it was running: cancelled on the way out
        await assert_alive(by_task)
    assert (await http.get(f"/api/tasks/{task['id']}")).status_code == 404


# --- /ws/tasks/{id} ------------------------------------------------------------------------------------


async def test_task_socket_streams_the_task_and_closes_with_1000_after_it_finishes(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}") as ws:
        assert await ws.recv() == {"type": "subscribed", "subscription": {"task_id": task["id"]}}
        snapshot = (await expect(ws, "snapshot"))["task"]
        assert snapshot == await read_task(http, task["id"])
        await update(http, task["id"], status="running")
        await update(http, task["id"], progress={"current": 1, "total": 2})
        await update(http, task["id"], status="completed", result=[1, 2])
        frames, code = await drain(ws)
    assert code == 1000
    assert frames[-1]["event"] == "task.completed"
    assert_stream_matches(frames, 1, await history(http, task["id"]))


@pytest.mark.parametrize("ending", ["failed", "cancel-pending", "cancel-running", "deleted"])
async def test_task_socket_closes_with_1000_after_any_final_event(
    app: ServedApp, http: httpx.AsyncClient, ending: str
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    if ending != "cancel-pending":
        await update(http, task["id"], status="running")
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}") as ws:
        await expect(ws, "subscribed")
        await expect(ws, "snapshot")
        if ending == "failed":
            await update(http, task["id"], status="failed", error_message="no luck")
        elif ending == "deleted":
            assert (await http.delete(f"/api/tasks/{task['id']}")).status_code == 204
        else:  # a running external task is cancelled once the grace (2 s here) runs out
            assert (await http.post(f"/api/tasks/{task['id']}/cancel")).status_code == 200
        frames, code = await drain(ws)
    assert code == 1000
    expected = {"failed": "task.failed", "deleted": "task.deleted"}.get(ending, "task.cancelled")
    assert frames[-1]["event"] == expected
    assert all(frame["type"] == "event" for frame in frames)


async def test_task_socket_on_a_finished_task_sends_the_snapshot_and_closes_with_1000(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    finished = await update(http, task["id"], status="completed", result="r")
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}") as ws:
        frames, code = await drain(ws)
    assert code == 1000
    assert frames == [
        {"type": "subscribed", "subscription": {"task_id": task["id"]}},
        {"type": "snapshot", "task": finished},
    ]


async def test_task_socket_with_since_at_the_finished_seq_sends_nothing_and_closes_with_1000(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    await update(http, task["id"], status="running")
    finished = await update(http, task["id"], status="failed", error_message="x")
    seq = finished["seq"]
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}?since={seq}") as ws:
        frames, code = await drain(ws)
    assert code == 1000
    assert frames == [{"type": "subscribed", "subscription": {"task_id": task["id"], "since": seq}}]
    # Behind: the current state, then the close.
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}?since=1") as ws:
        frames, code = await drain(ws)
    assert code == 1000
    assert [frame["type"] for frame in frames] == ["subscribed", "snapshot"]
    assert frames[1]["task"] == finished


async def test_task_socket_with_since_resumes_a_running_task(app: ServedApp, http: httpx.AsyncClient) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    current = await update(http, task["id"], status="running")
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}?since={current['seq']}") as ws:
        await expect(ws, "subscribed")
        await update(http, task["id"], progress={"current": 5, "total": 10})
        await update(http, task["id"], status="completed", result=None)
        frames, code = await drain(ws)
    assert code == 1000
    assert_stream_matches(frames, current["seq"], await history(http, task["id"]))


async def test_task_socket_for_an_unknown_task_sends_an_error_and_closes(app: ServedApp) -> None:
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/no-such-task") as ws:
        frames, code = await drain(ws)
    assert len(frames) == 1, frames
    assert_error(frames[0], "not_found")
    assert code not in (None, 1000, 1006, 1011)


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "", "%20", "1e3", "9" * 20, "1" * 4301])
async def test_task_socket_with_a_malformed_since_sends_an_error_and_closes(
    app: ServedApp, http: httpx.AsyncClient, since: str
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with await WsClient.connect(f"{app.ws_url}/ws/tasks/{task['id']}?since={since}") as ws:
        frames, code = await drain(ws)
    assert len(frames) == 1, frames
    assert_error(frames[0], "invalid_frame")
    assert code == 1008


# --- a slow client ------------------------------------------------------------------------------------

SLOW_BUFFER = 16
BLOB_CHARS = 150_000  # 200 kB of incompressible text per event


def burst_size() -> int:
    """Events enough to overflow a client that stops reading, twice over: what it holds unread is
    its fixed 64 kB window, the server's send buffer (at most tcp_wmem's maximum), one frame in
    the client library and the server-side outbox."""
    wmem = Path("/proc/sys/net/ipv4/tcp_wmem")
    send_buffer_max = int(wmem.read_text().split()[2]) if wmem.exists() else 4 * 1024 * 1024
    frame_bytes = BLOB_CHARS * 4 // 3
    return 2 * (send_buffer_max // frame_bytes + SLOW_BUFFER + 4)


async def test_a_client_that_stops_reading_is_closed_with_1013_and_nobody_waits_for_it(
    settings: Settings,
) -> None:
    small = msgspec.structs.replace(settings, ws_buffer=SLOW_BUFFER)
    async with ServedApp(small) as app, httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
        kind = await new_type(http)
        task = await external_task(http, kind)
        await update(http, task["id"], status="running")
        # max_queue=1: the client library stops reading the socket after one unread frame.
        async with (
            await connect_small_window(app, max_queue=1, compression=None) as slow,
            await WsClient.connect(app.ws_url + "/ws", compression=None) as fast,
        ):
            await watch(slow, task["id"])
            await watch(fast, task["id"])
            burst = burst_size()
            for seq in range(3, 3 + burst):
                await update(http, task["id"], metadata={"blob": secrets.token_urlsafe(BLOB_CHARS)})
                await expect_event(fast, task["id"], seq)  # the fast one keeps up, event by event
            await update(http, task["id"], status="completed", result="all there")
            await expect_event(fast, task["id"], 3 + burst)
            await assert_alive(fast)

            frames, code = await drain(slow, timeout_s=30)
            assert code == 1013
            # What it did get is an unbroken prefix: it was dropped, not skipped over.
            assert_stream_matches(frames, 2, (await history(http, task["id"]))[: 2 + len(frames)])
            assert 0 < len(frames) < burst
            metrics = text_string_to_metric_families((await http.get("/metrics")).text)
            (closes,) = [
                f.samples[0].value for f in metrics if f.name == "jobcast_websocket_slow_client_closes"
            ]
            assert closes == 1


# --- several API instances ---------------------------------------------------------------------------


async def test_events_reach_clients_of_another_api_instance(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with (
        ServedApp(settings) as other,
        httpx.AsyncClient(base_url=other.http_url, timeout=10) as other_http,
        await WsClient.connect(other.ws_url + "/ws") as there,
        await WsClient.connect(app.ws_url + "/ws") as here,
    ):
        await watch(there, task["id"])
        await subscribe(there, type=kind)
        await subscribe(here, type=kind)
        # A change accepted by this instance reaches a client of the other one (once: both its
        # subscriptions match).
        await update(http, task["id"], status="running")
        await expect_event(there, task["id"], 2)
        await expect_event(here, task["id"], 2)

        # A task accepted by the other instance reaches a client of this one.
        theirs = await external_task(other_http, kind)
        assert (await expect_event(here, theirs["id"], 1))["event"] == "task.created"
        await update(other_http, theirs["id"], status="completed", result="there")
        assert (await expect_event(here, theirs["id"], 2))["event"] == "task.completed"
        assert (await expect_event(there, theirs["id"], 1))["event"] == "task.created"
        assert (await expect_event(there, theirs["id"], 2))["event"] == "task.completed"


async def test_resubscribing_on_another_instance_with_the_last_seq_loses_nothing(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings
) -> None:
    kind = await new_type(http)
    task = await external_task(http, kind)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await watch(ws, task["id"])
        await update(http, task["id"], status="running")
        last_seen = (await expect_event(ws, task["id"], 2))["seq"]
    await update(http, task["id"], progress={"current": 1, "total": 1})
    async with (
        ServedApp(settings) as other,
        await WsClient.connect(f"{other.ws_url}/ws/tasks/{task['id']}?since={last_seen}") as ws,
    ):
        await expect(ws, "subscribed")
        snapshot = (await expect(ws, "snapshot"))["task"]
        assert snapshot == await read_task(http, task["id"])
        await update(http, task["id"], status="completed", result="here")
        frames, code = await drain(ws)
    assert code == 1000
    assert_stream_matches(frames, snapshot["seq"], await history(http, task["id"]))
