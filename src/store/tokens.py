"""API tokens (CONTRACT.md §5): random secrets shown once; Redis keeps only their SHA-256.

A token carries 256 random bits, so a fast hash is enough: nobody can guess a preimage, and
a lookup by hash costs one GET per request.
"""

import hashlib
import re
import secrets
from datetime import datetime

import msgspec
from redis.asyncio import Redis

from jobcast.errors import AlreadyExists, BadRequest, NotFound
from jobcast.model.principals import Principal, Role
from jobcast.model.tasks import utc_now
from jobcast.store import keys
from jobcast.store.atomic import ABSENT, Atomic, Guard, GuardFailed, Plan

TOKEN_PREFIX = "jc_"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What is stored of a token: who it stands for, never the token."""

    name: str
    role: Role
    types: list[str] = []
    created_at: datetime
    digest: str

    def principal(self) -> Principal:
        return Principal(self.name, self.role, frozenset(self.types))


decode_record = msgspec.json.Decoder(TokenRecord).decode


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """API tokens: only their digests are stored; a revocation reaches every API instance."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._atomic = Atomic(redis)

    async def create(self, name: str, role: Role, types: list[str]) -> tuple[TokenRecord, str]:
        """A new token for principal `name`; the token is returned here and nowhere else."""
        _check(name, role, types)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            name=name, role=role, types=sorted(set(types)), created_at=utc_now(), digest=digest_of(token)
        )
        plan = Plan(
            guards=[Guard("name free", ABSENT, ["HGET", keys.TOKENS, name])],
            writes=[
                ["HSET", keys.TOKENS, name, msgspec.json.encode(record).decode()],
                ["SET", keys.token_hash(record.digest), name],
            ],
        )
        try:
            await self._atomic.run(plan)
        except GuardFailed:
            raise AlreadyExists(f"a token named {name!r} exists; revoke it first") from None
        return record, token

    async def verify(self, token: str) -> Principal | None:
        """The principal a presented token stands for; None for an unknown or revoked one."""
        return await self.verify_digest(digest_of(token))

    async def verify_digest(self, digest: str) -> Principal | None:
        """verify, for a token already hashed with digest_of."""
        name = await self._redis.get(keys.token_hash(digest))
        if name is None:
            return None
        raw = await self._redis.hget(keys.TOKENS, name)
        return None if raw is None else decode_record(raw).principal()

    async def valid_digests(self, digests: set[str]) -> set[str]:
        """Those of `digests` whose tokens have not been revoked."""
        ordered = sorted(digests)
        if not ordered:
            return set()
        names = await self._redis.mget([keys.token_hash(digest) for digest in ordered])
        return {digest for digest, name in zip(ordered, names, strict=True) if name is not None}

    async def all(self) -> list[TokenRecord]:
        records = [decode_record(raw) for raw in (await self._redis.hgetall(keys.TOKENS)).values()]
        return sorted(records, key=lambda record: record.name)

    async def revoke(self, name: str) -> None:
        """The token stops working at once; every API instance hears of it to close sockets."""
        raw = await self._redis.hget(keys.TOKENS, name)
        if raw is None:
            raise NotFound(f"no token named {name!r}")
        record = decode_record(raw)
        plan = Plan(
            guards=[Guard("token", raw.decode(), ["HGET", keys.TOKENS, name])],
            writes=[
                ["HDEL", keys.TOKENS, name],
                ["DEL", keys.token_hash(record.digest)],
                ["PUBLISH", keys.REVOCATIONS_CHANNEL, name],
            ],
        )
        try:
            await self._atomic.run(plan)
        except GuardFailed:
            raise NotFound(f"no token named {name!r}") from None  # revoked meanwhile


def _check(name: str, role: Role, types: list[str]) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest(f"a token name is 1-64 letters, digits or ._@- and must match {NAME_PATTERN}")
    if types and role is not Role.WORKER:
        raise BadRequest("only a worker token serves types (--types)")
    if role is Role.WORKER and not types:
        raise BadRequest("a worker token needs the types it serves (--types T1,T2)")
