"""The callers of the authorization tests: one of each kind, with real tokens in Redis.

alice owns the tasks under test; bob is another submitter; `ext-worker` serves the type
`ext`, `other-worker` serves `other`; `gone` had a token that was revoked.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis.asyncio import Redis

from jobcast.model.principals import Role
from jobcast.runtime.network import free_port
from jobcast.runtime.redis_server import RedisServer
from jobcast.settings import Settings
from jobcast.store.tokens import TokenStore
from tests.conftest import FAST
from tests.helpers.processes import JobcastProcess, start_api

NONE = "no token"
BAD = "bad token"
REVOKED = "revoked"
OWNER = "owner"
OTHER = "other submitter"
WORKER = "worker of the type"
STRANGER = "worker of another type"
ADMIN = "admin"
CALLERS = (NONE, BAD, REVOKED, OWNER, OTHER, WORKER, STRANGER, ADMIN)
UNAUTHENTICATED = (NONE, BAD, REVOKED)
NAMES = {  # each caller's principal name
    OWNER: "alice",
    OTHER: "bob",
    WORKER: "ext-worker",
    STRANGER: "other-worker",
    ADMIN: "root",
    REVOKED: "gone",
}

TYPE = "ext"  # the type of the tasks under test
OTHER_TYPE = "other"


@dataclass(frozen=True)
class Callers:
    tokens: dict[str, str]  # caller → token; NONE has none

    def headers(self, caller: str) -> dict[str, str]:
        token = self.tokens.get(caller)
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def query(self, caller: str) -> str:
        """`?token=...` as a browser's WebSocket sends it ("" for no token)."""
        token = self.tokens.get(caller)
        return "" if token is None else f"?token={token}"


async def make_callers(redis: Redis) -> Callers:
    """Create every caller's token, revoke one, and return them."""
    store = TokenStore(redis)
    made = {
        OWNER: (Role.SUBMITTER, []),
        OTHER: (Role.SUBMITTER, []),
        WORKER: (Role.WORKER, [TYPE]),
        STRANGER: (Role.WORKER, [OTHER_TYPE]),
        ADMIN: (Role.ADMIN, []),
        REVOKED: (Role.SUBMITTER, []),
    }
    tokens = {caller: (await store.create(NAMES[caller], *spec))[1] for caller, spec in made.items()}
    await store.revoke(NAMES[REVOKED])
    tokens[BAD] = "jc_" + "x" * 43
    return Callers(tokens)


async def make_types(http: httpx.AsyncClient, callers: Callers) -> None:
    """The two external types, created by the admin."""
    for name in (TYPE, OTHER_TYPE):
        response = await http.post("/api/task-types", json={"name": name}, headers=callers.headers(ADMIN))
        assert response.status_code == 201, response.text


async def submit_as(http: httpx.AsyncClient, callers: Callers, caller: str = OWNER, **fields: object) -> str:
    """A new task of `ext` submitted by `caller`; its id."""
    body = {"type": TYPE, **fields}
    response = await http.post("/api/tasks", json=body, headers=callers.headers(caller))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@dataclass(frozen=True)
class SecuredApi:
    """A `jobcast api` process with auth on, on its own Redis, with every caller's token made
    and the two types created."""

    process: JobcastProcess
    port: int
    redis_url: str
    callers: Callers

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def submit(self) -> str:
        """A new task of `ext`, alice's; its id."""
        return asyncio.run(_submit(self.http_url, self.callers))


@contextlib.contextmanager
def secured_api(redis_binary: str, workdir: Path) -> Iterator[SecuredApi]:
    """Start one, for the tests of a module (a subprocess: its tests may block their own loop)."""
    redis_server = RedisServer(redis_binary, workdir / "redis", appendonly=False).start()
    settings = Settings(redis_url=redis_server.url, **{**FAST, "auth": True})  # type: ignore[arg-type]
    port = free_port()
    try:
        api = start_api(settings, workdir / "api.log", port)
        try:
            callers = asyncio.run(_prepare(f"http://127.0.0.1:{port}", redis_server.url))
            yield SecuredApi(api, port, redis_server.url, callers)
        finally:
            api.stop()
    finally:
        redis_server.stop()


async def _prepare(http_url: str, redis_url: str) -> Callers:
    redis = Redis.from_url(redis_url)
    try:
        callers = await make_callers(redis)
    finally:
        await redis.aclose()
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as http:
        await make_types(http, callers)
    return callers


async def _submit(http_url: str, callers: Callers) -> str:
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as http:
        return await submit_as(http, callers)
