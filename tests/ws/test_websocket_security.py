"""WebSocket defences (CONTRACT.md §5): the Origin check before the upgrade, pings that find
dead peers, and the per-principal connection quota counted in Redis across API instances."""

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import msgspec
import pytest
import websockets
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from jobcast.settings import Settings, SettingsError
from jobcast.store import keys
from jobcast.store.quotas import ConnectionSlots
from jobcast.store.tokens import TokenStore
from tests.conftest import ServedApp
from tests.helpers.callers import ADMIN, NAMES, OTHER, OWNER, Callers, make_callers
from tests.helpers.wsclient import WAIT_S, WsClient

MAX_CONNECTIONS = 3
PING_S = 1.0  # a silent peer is dropped 2 s after it connects


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, auth=True, ws_max_connections=MAX_CONNECTIONS, ws_ping_s=PING_S, ws_ping_timeout_s=PING_S
    )


@pytest.fixture
async def callers(redis: Redis) -> Callers:
    return await make_callers(redis)


@pytest.fixture
async def second_app(settings: Settings) -> AsyncIterator[ServedApp]:
    """Another API instance on the same Redis."""
    async with ServedApp(settings) as served:
        yield served


async def assert_usable(ws: WsClient) -> None:
    await ws.send(op="ping")
    assert (await ws.recv())["type"] == "pong"


# --- Origin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [True, False])
async def test_a_page_of_another_origin_cannot_open_a_socket(
    settings: Settings, callers: Callers, auth: bool
) -> None:
    async with ServedApp(msgspec.structs.replace(settings, auth=auth)) as app:
        url = app.ws_url + "/ws" + callers.query(ADMIN)
        for origin in [
            "http://evil.example",
            f"http://127.0.0.1:{app.port + 1}",
            "null",
            f"ftp://127.0.0.1:{app.port}",
        ]:
            with pytest.raises(InvalidStatus) as refused:
                await WsClient.connect(url, additional_headers={"Origin": origin})
            assert refused.value.response.status_code == 403, origin
        for origin in [None, f"http://127.0.0.1:{app.port}", f"https://127.0.0.1:{app.port}/"]:
            headers = {} if origin is None else {"Origin": origin}
            async with await WsClient.connect(url, additional_headers=headers) as ws:
                await assert_usable(ws)


async def test_allowed_origins_are_let_in_and_others_still_not(settings: Settings, callers: Callers) -> None:
    allowed = msgspec.structs.replace(
        settings, allowed_origins="https://app.example.com, http://localhost:5173"
    )
    async with ServedApp(allowed) as app:
        url = app.ws_url + "/ws" + callers.query(OWNER)
        for origin in ["https://app.example.com", "http://localhost:5173", f"http://127.0.0.1:{app.port}"]:
            async with await WsClient.connect(url, additional_headers={"Origin": origin}) as ws:
                await assert_usable(ws)
        for origin in [
            "https://app.example.com.evil.example",
            "http://localhost:5174",
            "https://example.com",
        ]:
            with pytest.raises(InvalidStatus):
                await WsClient.connect(url, additional_headers={"Origin": origin})


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "*"])
def test_an_allowed_origin_that_is_not_an_origin_is_refused_at_start(value: str) -> None:
    with pytest.raises(SettingsError, match="JOBCAST_ALLOWED_ORIGINS"):
        Settings.from_env({"JOBCAST_ALLOWED_ORIGINS": value})


# --- pings ----------------------------------------------------------------------------------------


async def test_a_peer_that_stops_answering_pings_is_dropped_and_its_slot_freed(
    app: ServedApp, callers: Callers
) -> None:
    """A raw socket completes the handshake and then never answers: the server pings it,
    closes it, and the principal's connection slot is free again."""
    dead = [await _silent_socket(app.port, "/ws" + callers.query(OWNER)) for _ in range(MAX_CONNECTIONS)]
    with pytest.raises(websockets.ConnectionClosed) as refused:
        async with await WsClient.connect(app.ws_url + "/ws" + callers.query(OWNER)) as ws:
            await ws.recv()
    assert refused.value.rcvd is not None
    assert refused.value.rcvd.code == 1008
    for reader, writer in dead:
        received = await asyncio.wait_for(reader.read(), WAIT_S)  # until the server closes
        assert received[0] == 0x89, "the server pinged first"  # FIN + ping opcode
        writer.close()
    async with await WsClient.connect(app.ws_url + "/ws" + callers.query(OWNER)) as ws:
        await assert_usable(ws)


async def test_a_peer_that_answers_pings_stays_connected(app: ServedApp, callers: Callers) -> None:
    async with await WsClient.connect(app.ws_url + "/ws" + callers.query(OWNER)) as ws:
        await asyncio.sleep(PING_S * 4)  # several ping rounds pass: nothing should happen
        await assert_usable(ws)


# --- connection quota -----------------------------------------------------------------------------


async def test_connections_per_principal_are_counted_across_api_instances(
    app: ServedApp, second_app: ServedApp, callers: Callers
) -> None:
    owner_url = "/ws" + callers.query(OWNER)
    held = [
        await WsClient.connect(app.ws_url + owner_url),
        await WsClient.connect(app.ws_url + owner_url),
        await WsClient.connect(second_app.ws_url + owner_url),
    ]
    for ws in held:
        await assert_usable(ws)
    for served in (app, second_app):
        over = await WsClient.connect(served.ws_url + owner_url)
        assert await over.close_code() == 1008
        assert over.connection.close_reason == f"at most {MAX_CONNECTIONS} open connections per principal"
    async with await WsClient.connect(second_app.ws_url + "/ws" + callers.query(OTHER)) as other:
        await assert_usable(other)  # another principal has its own quota
    await held.pop().close()
    async with await WsClient.connect(app.ws_url + owner_url) as again:
        await assert_usable(again)
    for ws in held:
        await assert_usable(ws)
        await ws.close()


async def test_an_instance_that_dies_frees_its_slots_once_they_expire(redis: Redis) -> None:
    """A crashed instance never gives its slots back: they expire, unrefreshed, after the TTL."""
    crashed = ConnectionSlots(redis, limit=2, ttl_ms=300)  # never refreshes: it "died"
    assert await crashed.take("alice") is not None
    assert await crashed.take("alice") is not None
    survivor = ConnectionSlots(redis, limit=2, ttl_ms=300)
    assert await survivor.take("alice") is None
    for _ in range(int(WAIT_S / 0.05)):  # the TTL is 0.3 s; expiry is Redis's to tell
        if await survivor.take("alice") is not None:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the dead instance's slots never expired")


async def test_live_slots_are_refreshed_and_outlive_their_ttl(redis: Redis) -> None:
    slots = ConnectionSlots(redis, limit=1, ttl_ms=300)
    refreshing = asyncio.create_task(slots.refresh_forever())
    try:
        assert await slots.take("alice") is not None
        await asyncio.sleep(1.0)  # more than three TTLs
        assert await ConnectionSlots(redis, limit=1, ttl_ms=300).take("alice") is None
    finally:
        refreshing.cancel()


async def _silent_socket(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake by hand; the socket then never reads frames or answers pings."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_revocation_missed_while_the_events_stream_was_down_still_closes_its_sockets(
    app: ServedApp, callers: Callers, redis: Redis
) -> None:
    """The hub's subscription is cut and the token revoked in the same step, so the revocation is
    published while no hub listens: the check after the resubscribe closes the socket anyway."""
    async with (
        await WsClient.connect(f"{app.ws_url}/ws{callers.query(OWNER)}") as revoked,
        await WsClient.connect(f"{app.ws_url}/ws{callers.query(OTHER)}") as bystander,
    ):
        await assert_usable(revoked)
        await assert_usable(bystander)
        name = NAMES[OWNER]
        (record,) = [r for r in await TokenStore(redis).all() if r.name == name]
        async with redis.pipeline(transaction=True) as step:  # what TokenStore.revoke writes, plus the cut
            step.client_kill_filter(_type="pubsub")
            step.hdel(keys.TOKENS, name)
            step.delete(keys.token_hash(record.digest))
            step.publish(keys.REVOCATIONS_CHANNEL, name)
            await step.execute()
        assert await revoked.close_code() == 1008
        await assert_usable(bystander)
