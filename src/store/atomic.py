"""Plans, and running them in one atomic step: every guard reads what it expects, then every
write runs (lua/check_then_write.lua). So the writes of one change either all happen, on the
state they were planned on, or none do."""

from typing import Any

import msgspec
from redis.asyncio import Redis

from jobcast.store.scripts import register

ABSENT = ""  # a guard expecting ABSENT requires the key or field not to exist
Command = list[str]
encode = msgspec.json.Encoder().encode


class Guard(msgspec.Struct, frozen=True):
    """`command` must reply `expected` (as a string, "" for nil). A plan's last guard may make a
    write of its own (a ZREM that claims the change for one writer)."""

    name: str  # what it checks, so a caller tells failures apart by name
    expected: str
    command: Command


class Plan(msgspec.Struct):
    """A change as data: the guards it is planned on, and the writes it makes when they hold."""

    guards: list[Guard]
    writes: list[Command]


class GuardFailed(Exception):
    """A plan's guard read something else than expected: nothing was written."""

    def __init__(self, guard: str, found: str) -> None:
        super().__init__(f"guard {guard!r} found {found!r}")
        self.guard = guard
        self.found = found


class Atomic:
    """Runs plans with the check-then-write script."""

    def __init__(self, redis: Redis) -> None:
        self._script = register(redis, "check_then_write")

    async def run(self, plan: Plan) -> None:
        """Run `plan`; GuardFailed when one of its guards does not hold."""
        guards = [[guard.expected, *guard.command] for guard in plan.guards]
        reply: list[Any] = await self._script(args=[encode({"guards": guards, "writes": plan.writes})])
        index, found = int(reply[0]), reply[1]
        if index:
            found = found.decode() if isinstance(found, bytes) else str(found)
            raise GuardFailed(plan.guards[index - 1].name, found)
