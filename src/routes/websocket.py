"""/ws and /ws/tasks/{id} (CONTRACT.md §4): accept, then send in the background and block on
receive to notice the disconnect."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath
from redis.exceptions import RedisError

from jobcast.auth.authentication import allowed_origin
from jobcast.events.client import NORMAL, POLICY_VIOLATION, TRY_AGAIN, Client
from jobcast.events.protocol import ErrorCode, Subscribe, error_frame
from jobcast.events.session import Session
from jobcast.model.numbers import parse_natural
from jobcast.model.principals import Principal
from jobcast.routes.dependencies import Caller, ServicesDep
from jobcast.routes.lifespan import Services
from jobcast.store.quotas import ConnectionSlots

TOO_BIG = 1009
INTERNAL_ERROR = 1011
# A client closed for being slow has a full socket: its close frame goes out only once it reads
# again. Wait that long for it (the connection holds no outbox meanwhile), then drop it.
CLOSE_WAIT_S = 30.0
log = logging.getLogger(__name__)
Socket = WebSocket[Any, Any, Any]
FirstTask = tuple[str, str | None]  # /ws/tasks/{id}: the task id and `since`


@websocket("/ws", guards=[allowed_origin])
async def events_socket(socket: Socket, principal: Caller, services: ServicesDep) -> None:
    """Subscribe and unsubscribe with JSON ops; receive snapshots and events."""
    client = Client(principal, services.settings.ws_buffer, token_digest=_token_digest(socket))
    await _serve(socket, client, services)


@websocket("/ws/tasks/{task_id:str}", guards=[allowed_origin])
async def task_socket(
    socket: Socket, task_id: FromPath[str], principal: Caller, services: ServicesDep
) -> None:
    """One task at once (`?since=N` to resume); closed with 1000 after its final event."""
    buffer = services.settings.ws_buffer
    client = Client(principal, buffer, close_on_final=True, token_digest=_token_digest(socket))
    await _serve(socket, client, services, first=(task_id, socket.query_params.get("since")))


def _token_digest(socket: Socket) -> str:
    """The digest of the token the socket authenticated with ("" with auth off)."""
    digest = socket.scope.get("auth")
    return digest if isinstance(digest, str) else ""


async def _serve(socket: Socket, client: Client, services: Services, first: FirstTask | None = None) -> None:
    session = Session(services.hub, services.types, client, services.settings.ws_max_subscriptions)
    async with _connection_slot(services.connections, client.principal) as refusal:
        await socket.accept()
        if refusal is not None:
            await socket.close(*refusal)
            return
        await _converse(socket, client, session, services.settings.ws_max_frame_bytes, first)


@contextlib.asynccontextmanager
async def _connection_slot(
    slots: ConnectionSlots | None, principal: Principal
) -> AsyncIterator[tuple[int, str] | None]:
    """Hold one of the principal's connection slots while the socket is open; without one,
    yield the close code and reason to refuse it with."""
    if slots is None:
        yield None
        return
    try:
        slot = await slots.take(principal.name)
    except RedisError as error:
        log.warning("could not count connections: %s", error)
        yield TRY_AGAIN, "the task store is unavailable; retry"
        return
    if slot is None:
        yield POLICY_VIOLATION, f"at most {slots.limit} open connections per principal"
        return
    try:
        yield None
    finally:
        await slots.give_back(slot)


async def _converse(
    socket: Socket,
    client: Client,
    session: Session,
    max_frame_bytes: int,
    first: FirstTask | None,
) -> None:
    session.attach()
    # This task sends; it stops once the client's outbox is closed: by the hub (slow client,
    # revoked token), by the receiver (a frame too large), or when the receiver ends for any
    # reason. One task fewer per connection than a sender of its own.
    receiver = asyncio.create_task(_receive_all(socket, client, session, max_frame_bytes))
    receiver.add_done_callback(lambda _: client.gone())
    try:
        if first is not None:
            await _subscribe_first(client, session, *first)
        await _send_all(socket, client)
    except Exception:
        log.exception("websocket connection failed")
        client.close(INTERNAL_ERROR, "internal error")
    finally:
        session.detach()
        receiver.cancel()
        (outcome,) = await asyncio.gather(receiver, return_exceptions=True)
        if isinstance(outcome, Exception):
            log.error("websocket connection failed", exc_info=outcome)
            client.close(INTERNAL_ERROR, "internal error")
        if client.close_code is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.close(client.close_code, client.close_reason), CLOSE_WAIT_S)


async def _subscribe_first(client: Client, session: Session, task_id: str, since: str | None) -> None:
    """/ws/tasks/{id}: a bad `since` or an unknown task is an error frame, then a 1008 close."""
    seq = None if since is None else parse_natural(since)
    if since is not None and seq is None:
        client.send(error_frame(ErrorCode.INVALID_FRAME, "since must be a non-negative integer"))
        client.end(POLICY_VIOLATION, "invalid request")
        return
    target = Subscribe(task_id=task_id, since=seq)
    if not await session.subscribe_or_answer(target):
        client.end(POLICY_VIOLATION, "subscription refused")


async def _send_all(socket: Socket, client: Client) -> None:
    try:
        while True:
            frame = await client.outbox.get()
            if not frame:
                if not client.peer_gone:
                    client.close(client.end_code, client.end_reason)
                return
            await socket.send_data(frame, mode="text")
    except (WebSocketDisconnect, OSError, RuntimeError):
        client.close(NORMAL)


async def _receive_all(socket: Socket, client: Client, session: Session, max_bytes: int) -> None:
    while True:
        try:
            message = await socket.receive()
        except WebSocketDisconnect:
            message = {"type": "websocket.disconnect", "code": NORMAL}
        if message["type"] != "websocket.receive":
            client.gone()  # nothing to send it
            return
        text = message.get("text")
        if not isinstance(text, str):
            client.send(error_frame(ErrorCode.BINARY_FRAME, "send JSON in text frames"))
        elif len(text) > max_bytes:
            client.close(TOO_BIG, "frame too large")
            return
        else:
            await session.handle(text)
