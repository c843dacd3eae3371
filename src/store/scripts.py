"""The Lua scripts jobcast runs in Redis: one file each in lua/, registered by name."""

from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def source(name: str) -> str:
    """The text of lua/NAME.lua."""
    return resources.files("jobcast.store").joinpath(f"lua/{name}.lua").read_text()


def register(redis: Redis, name: str) -> AsyncScript:
    """lua/NAME.lua as a script of this client: run by EVALSHA, loaded when Redis lacks it."""
    return redis.register_script(source(name))
