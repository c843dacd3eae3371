"""GET /metrics, /api/stats and /api/workers (CONTRACT.md §6): what the whole system is doing;
and the dashboard that shows it."""

from litestar import Response, get
from litestar.types import ControllerRouterHandler

from jobcast.auth.access import ensure_admin
from jobcast.routes.dashboard import dashboard_assets, dashboard_page
from jobcast.routes.dependencies import Caller, HubDep, ServicesDep, TypesDep
from jobcast.routes.metrics import CONTENT_TYPE, exposition
from jobcast.routes.responses import SECURITY, errors
from jobcast.store.stats import Stats, read_stats
from jobcast.store.workers import WorkerInfo, live_workers


@get("/metrics", tags=["operations"], summary="Prometheus metrics", media_type=CONTENT_TYPE)
async def metrics(services: ServicesDep, types: TypesDep, hub: HubDep) -> Response[bytes]:
    """Open, like /health: aggregates and type names only, never a task, its owner or parameters."""
    stats = await read_stats(services.redis, await types.all(include_inactive=True))
    return Response(exposition(stats, hub.counters, hub.connections), media_type=CONTENT_TYPE)


@get(
    "/api/stats",
    tags=["operations"],
    summary="Tasks by status and type, throughput, durations, workers",
    responses=errors(403),
    security=SECURITY,
)
async def stats(services: ServicesDep, types: TypesDep, principal: Caller) -> Stats:
    ensure_admin(principal, "read the system's statistics")
    return await read_stats(services.redis, await types.all(include_inactive=True))


@get(
    "/api/workers",
    tags=["operations"],
    summary="Live workers: their types, heartbeat and current tasks",
    responses=errors(403),
    security=SECURITY,
)
async def workers(services: ServicesDep, principal: Caller) -> list[WorkerInfo]:
    ensure_admin(principal, "list the workers")
    return await live_workers(services.redis)


OPS: list[ControllerRouterHandler] = [metrics, stats, workers, dashboard_page, dashboard_assets()]
