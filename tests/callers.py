"""The callers of the authorization tests: one of each kind, with real tokens in Redis.

alice owns the tasks under test; bob is another submitter; `ext-worker` serves the type
`ext`, `other-worker` serves `other`; `gone` had a token that was revoked.
"""

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from src.access import Role
from src.tokens import TokenStore

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
        OWNER: ("alice", Role.SUBMITTER, []),
        OTHER: ("bob", Role.SUBMITTER, []),
        WORKER: ("ext-worker", Role.WORKER, [TYPE]),
        STRANGER: ("other-worker", Role.WORKER, [OTHER_TYPE]),
        ADMIN: ("root", Role.ADMIN, []),
        REVOKED: ("gone", Role.SUBMITTER, []),
    }
    tokens = {caller: (await store.create(*spec))[1] for caller, spec in made.items()}
    await store.revoke("gone")
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
