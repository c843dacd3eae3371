"""Runs a writes.Plan on Redis in one atomic step."""

from importlib import resources
from typing import Any

from redis.asyncio import Redis

from src.writes import Plan, encode

SCRIPT = resources.files("src").joinpath("lua/check_then_write.lua").read_text()


class GuardFailed(Exception):
    """A plan's guard read something else than expected: nothing was written."""

    def __init__(self, index: int, found: str) -> None:
        super().__init__(f"guard {index} found {found!r}")
        self.index = index  # 1-based, in the order the plan lists its guards
        self.found = found


class Atomic:
    """Runs plans with the check-then-write script (EVALSHA, loading it when Redis lacks it)."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(SCRIPT)

    async def run(self, plan: Plan) -> None:
        """Run `plan`; raise GuardFailed when one of its guards does not hold."""
        reply: list[Any] = await self._script(args=[encode(plan)])
        index, found = int(reply[0]), reply[1]
        if index:
            raise GuardFailed(index, found.decode() if isinstance(found, bytes) else str(found))
