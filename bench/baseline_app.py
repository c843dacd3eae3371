"""The baselines' server: Litestar's own ChannelsPlugin on Redis pub/sub, and a bare POST route.

`python -m bench.baseline_app PORT REDIS_URL` serves, with uvicorn's defaults as `jobcast api`
has them:
- `/ws/{channel}`: the plugin's generated WebSocket handler for any channel (Redis pub/sub
  backend). Channel names are used as the Redis channel unchanged, so the plugin can serve
  jobcast's own events channel (`jobcast:events`) to its clients — the same events, the same
  bytes — or a channel per client.
- `POST /api/tasks`: decodes the submission into a Struct and answers 202: the framework's own
  cost of a request, with nothing stored.
"""

import sys
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Response, get, post
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis

from bench.harness import raise_file_limit


class Submission(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class SameNameBackend(RedisChannelsPubSubBackend):
    """The plugin's Redis pub/sub backend, with channel names as they are (no prefix)."""

    def _make_key(self, channel: str) -> str:
        return channel


@post("/api/tasks", status_code=202)
async def submit(data: Submission) -> Response[dict[str, str]]:
    return Response({"type": data.type}, status_code=202)


@get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


def create_app(redis_url: str) -> Litestar:
    channels = ChannelsPlugin(
        backend=SameNameBackend(redis=Redis.from_url(redis_url)),
        arbitrary_channels_allowed=True,
        create_ws_route_handlers=True,
        ws_handler_base_path="/ws",
    )
    return Litestar(route_handlers=[submit, ready], plugins=[channels], logging_config=None)


def main() -> None:
    port, redis_url = int(sys.argv[1]), sys.argv[2]
    raise_file_limit()
    uvicorn.run(create_app(redis_url), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
