"""The API: `create_app(settings)` builds the Litestar app; its lifespan owns every connection."""

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobcast import errors
from jobcast.auth.authentication import token_authentication
from jobcast.routes.dependencies import DEPENDENCIES
from jobcast.routes.health import live, ready
from jobcast.routes.lifespan import open_services
from jobcast.routes.operations import OPS
from jobcast.routes.query import query_names, refuse_unknown_query
from jobcast.routes.responses import BEARER, ErrorBody
from jobcast.routes.task_types import TaskTypeController
from jobcast.routes.tasks import TaskController
from jobcast.routes.websocket import events_socket, task_socket
from jobcast.settings import Settings

VERSION = "0.1.0"
log = logging.getLogger(__name__)
RETRY_AFTER_S = 1
KEEP_ALIVE_S = 75

STATUS_CODES: dict[type[errors.JobcastError], int] = {
    errors.BadRequest: 400,
    errors.Inactive: 400,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.InvalidTransition: 409,
    errors.InvalidParameters: 422,
    errors.InvalidSchema: 422,
    errors.TooManyRequests: 429,
    errors.Unavailable: 503,
}


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for this app: the WebSocket frame bound, pings that find dead peers, and
    idle keep-alive connections held longer than a client or load balancer holds them (60 s is
    common): a server that closes first races the client's next request on that connection.
    permessage-deflate as configured: a compressing connection keeps zlib state for its whole
    life, more than the rest of it together (bench/NOTES.md)."""
    return {
        "timeout_keep_alive": KEEP_ALIVE_S,
        "ws_per_message_deflate": settings.ws_compression,
        "ws_max_size": settings.ws_max_frame_bytes,
        "ws_ping_interval": settings.ws_ping_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
    }


def create_app(settings: Settings) -> Litestar:
    """The API (CONTRACT.md): every endpoint, the WebSocket hub and the dashboard, with their
    services opened by the app's lifespan from `settings`."""
    app = Litestar(
        route_handlers=[TaskTypeController, TaskController, events_socket, task_socket, live, ready, *OPS],
        dependencies=DEPENDENCIES,
        lifespan=[_services_lifespan],
        state=State({"settings": settings}),
        exception_handlers={
            errors.JobcastError: _jobcast_error,
            RedisConnectionError: _redis_unavailable,
            RedisTimeoutError: _redis_unavailable,
            ResponseError: _redis_refused,
            NotFoundException: _no_such_route,
            RecursionError: _too_deep,
            500: _internal_error,
        },
        logging_config=None,  # logging is the process's to configure (cli.py), not the app's
        middleware=[token_authentication()] if settings.auth else [],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="jobcast",
            version=VERSION,
            path="/schema",
            components=Components(security_schemes={BEARER: SecurityScheme(type="http", scheme="bearer")}),
        ),
        before_request=refuse_unknown_query,
    )
    app.state.query_names = query_names(app)
    return app


@contextlib.asynccontextmanager
async def _services_lifespan(app: Litestar) -> AsyncIterator[None]:
    async with open_services(app.state.settings) as services:
        app.state.services = services
        yield


def _error(
    status_code: int, detail: str, extra: Any = None, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(status_code, detail, extra), status_code=status_code, headers=headers)


def _jobcast_error(_: Request[Any, Any, Any], error: errors.JobcastError) -> Response[Any]:
    status_code = next(code for cls, code in STATUS_CODES.items() if isinstance(error, cls))
    headers = None
    if isinstance(error, errors.TooManyRequests):
        headers = {"Retry-After": str(error.retry_after_s)}
    elif status_code == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return _error(status_code, error.detail, error.extra, headers)


def _redis_unavailable(_: Request[Any, Any, Any], __: Exception) -> Response[Any]:
    detail = "the task store is unavailable; retry shortly"
    return _error(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})


# Replies of a Redis that is up but cannot take writes right now: out of memory, failing to
# persist, or a replica after a failover. Any other error reply is a bug: a plain 500.
REFUSALS = ("OOM", "MISCONF", "READONLY", "NOREPLICAS", "MASTERDOWN")


def _redis_refused(_: Request[Any, Any, Any], error: ResponseError) -> Response[Any]:
    if str(error).startswith(REFUSALS):
        detail = f"the task store refuses writes for now ({str(error).split(' ', 1)[0]}); retry shortly"
        return _error(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})
    return _error(500, "Internal Server Error")


def _internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    # A bug: the caller learns nothing of it, the log everything.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return _error(500, "Internal Server Error")


def _too_deep(_: Request[Any, Any, Any], __: RecursionError) -> Response[Any]:
    # Decoding or validating input is the only deep recursion a request can cause.
    return _error(400, "the request is nested too deeply to process")


def _no_such_route(request: Request[Any, Any, Any], error: NotFoundException) -> Response[Any]:
    return _error(404, f"{request.url.path} not found")
