"""API tokens: created once, stored only as a hash, revoked at once; and the `jobcast token` command."""

import subprocess
import sys

import pytest
from redis.asyncio import Redis

from jobcast.errors import AlreadyExists, BadRequest, NotFound
from jobcast.model.principals import Principal, Role
from jobcast.settings import Settings
from jobcast.store import keys
from jobcast.store.tokens import TOKEN_PREFIX, TokenStore
from tests.helpers.processes import environment


@pytest.fixture
def store(redis: Redis) -> TokenStore:
    return TokenStore(redis)


async def everything_in(redis: Redis) -> bytes:
    """Every key and value in Redis, as one blob to search."""
    blob = b""
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        value = await (redis.hgetall(key) if kind == "hash" else redis.get(key))
        blob += key + b"=" + repr(value).encode() + b"\n"
    return blob


async def test_a_token_stands_for_its_principal_and_only_its_hash_is_stored(
    store: TokenStore, redis: Redis
) -> None:
    record, token = await store.create("render-farm", Role.WORKER, ["pdf.export", "ocr.page"])
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) > 40
    assert await store.verify(token) == Principal(
        "render-farm", Role.WORKER, frozenset({"pdf.export", "ocr.page"})
    )
    assert record.types == ["ocr.page", "pdf.export"]
    assert token.encode() not in await everything_in(redis)
    assert token.removeprefix(TOKEN_PREFIX).encode() not in await everything_in(redis)


async def test_unknown_and_altered_tokens_are_nobody(store: TokenStore) -> None:
    _, token = await store.create("alice", Role.SUBMITTER, [])
    for presented in ["", "jc_", token[:-1], token + "x", token.upper(), "alice"]:
        assert await store.verify(presented) is None


async def test_each_token_is_new(store: TokenStore) -> None:
    tokens = {(await store.create(f"user{n}", Role.SUBMITTER, []))[1] for n in range(20)}
    assert len(tokens) == 20


async def test_a_revoked_token_fails_at_once_and_is_announced(store: TokenStore, redis: Redis) -> None:
    _, token = await store.create("alice", Role.SUBMITTER, [])
    _, other = await store.create("bob", Role.SUBMITTER, [])
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(keys.REVOCATIONS_CHANNEL)
        await pubsub.get_message(timeout=5)  # the subscribe confirmation
        await store.revoke("alice")
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None
    assert message["data"] == b"alice"
    assert await store.verify(token) is None
    assert await store.verify(other) is not None
    with pytest.raises(NotFound):
        await store.revoke("alice")


async def test_a_name_is_taken_until_revoked(store: TokenStore) -> None:
    _, first = await store.create("alice", Role.SUBMITTER, [])
    with pytest.raises(AlreadyExists):
        await store.create("alice", Role.ADMIN, [])
    assert await store.verify(first) == Principal("alice", Role.SUBMITTER)
    await store.revoke("alice")
    _, second = await store.create("alice", Role.ADMIN, [])
    assert await store.verify(second) == Principal("alice", Role.ADMIN)


@pytest.mark.parametrize(
    ("name", "role", "types", "words"),
    [
        ("", Role.SUBMITTER, [], "token name"),
        ("has space", Role.SUBMITTER, [], "token name"),
        ("x" * 65, Role.SUBMITTER, [], "token name"),
        ("alice", Role.SUBMITTER, ["pdf.export"], "only a worker"),
        ("farm", Role.WORKER, [], "needs the types"),
    ],
)
async def test_bad_token_requests_are_refused_and_store_nothing(
    store: TokenStore, redis: Redis, name: str, role: Role, types: list[str], words: str
) -> None:
    with pytest.raises(BadRequest, match=words):
        await store.create(name, role, types)
    assert await redis.dbsize() == 0


def jobcast_token(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobcast", "token", *arguments],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_the_token_command_creates_lists_and_revokes(settings: Settings, store: TokenStore) -> None:
    created = jobcast_token(settings, "create", "--role", "worker", "--name", "farm", "--types", "a.b, c.d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[-1]
    assert token.startswith(TOKEN_PREFIX)
    assert "farm" in created.stdout.splitlines()[0]
    assert await store.verify(token) == Principal("farm", Role.WORKER, frozenset({"a.b", "c.d"}))

    listed = jobcast_token(settings, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[:3] == ["farm", "worker", "a.b,c.d"]
    assert token not in listed.stdout

    revoked = jobcast_token(settings, "revoke", "farm")
    assert (revoked.returncode, revoked.stdout.strip()) == (0, "revoked farm")
    assert await store.verify(token) is None


async def test_the_token_command_says_what_is_wrong(settings: Settings) -> None:
    unknown = jobcast_token(settings, "revoke", "nobody")
    assert unknown.returncode == 1
    assert "no token named 'nobody'" in unknown.stderr
    no_types = jobcast_token(settings, "create", "--role", "worker", "--name", "farm")
    assert no_types.returncode == 1
    assert "--types" in no_types.stderr
    bad_role = jobcast_token(settings, "create", "--role", "root", "--name", "x")
    assert bad_role.returncode == 2
    assert "invalid choice" in bad_role.stderr


async def test_only_the_digests_of_unrevoked_tokens_are_valid(store: TokenStore) -> None:
    kept, _ = await store.create("kept", Role.SUBMITTER, [])
    gone, _ = await store.create("gone", Role.SUBMITTER, [])
    await store.revoke("gone")
    again, _ = await store.create("gone", Role.SUBMITTER, [])  # the same name, a new token
    assert await store.valid_digests({kept.digest, gone.digest, again.digest, "f" * 64}) == {
        kept.digest,
        again.digest,
    }
    assert await store.valid_digests(set()) == set()
