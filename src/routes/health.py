"""/health/live and /health/ready (CONTRACT.md §6)."""

import asyncio
import logging

import msgspec
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from redis.exceptions import RedisError

from jobcast.routes.dependencies import HubDep, ServicesDep
from jobcast.store.connection import eviction_problem

PING_TIMEOUT_S = 1.0
log = logging.getLogger(__name__)


class Health(msgspec.Struct):
    status: str
    detail: str = ""


NOT_READY = ResponseSpec(Health, description="Not ready; `detail` says why.", generate_examples=False)


@get("/health/live", tags=["operations"], summary="The process is up")
async def live() -> Health:
    return Health("ok")


@get(
    "/health/ready",
    tags=["operations"],
    summary="Redis is reachable and events are flowing",
    responses={
        503: ResponseSpec(Health, description="Not ready: `detail` says why.", generate_examples=False)
    },
)
async def ready(services: ServicesDep, hub: HubDep) -> Response[Health]:
    try:
        await asyncio.wait_for(services.redis.ping(), PING_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError) as error:
        log.warning("readiness: Redis is not reachable: %s", error)  # the detail is for the log only
        return Response(Health("unavailable", "Redis is not reachable"), status_code=503)
    problem = await eviction_problem(services.redis)
    if problem is not None:
        return Response(Health("unavailable", problem), status_code=503)
    if not hub.subscribed.is_set():
        return Response(Health("unavailable", "not subscribed to the events channel yet"), status_code=503)
    return Response(Health("ok"))
