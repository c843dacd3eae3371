"""The stores of one process, made from its settings on one Redis client."""

from redis.asyncio import Redis

from jobcast.settings import Settings
from jobcast.store.atomic import Atomic
from jobcast.store.reconciler import RECONCILE_INTERVAL_S, Reconciler
from jobcast.store.task_plans import Limits
from jobcast.store.task_types import TypeStore
from jobcast.store.tasks import TaskStore


def open_stores(settings: Settings, redis: Redis) -> tuple[TaskStore, TypeStore]:
    atomic = Atomic(redis)
    # A reconciler acts at its first pass after a cancel deadline: leave it time to get there.
    deadline_s = max(0.0, settings.cancel_grace_s - 2 * RECONCILE_INTERVAL_S)
    limits = Limits(
        cancel_grace_ms=int(deadline_s * 1000),
        history_max=settings.history_max,
        idempotency_ttl_s=settings.idempotency_ttl_s,
    )
    return TaskStore(redis, atomic, limits), TypeStore(redis, atomic)


def new_reconciler(settings: Settings, redis: Redis, tasks: TaskStore) -> Reconciler:
    ttl_s, retention_s = settings.heartbeat_ttl_s, settings.retention_s
    return Reconciler(redis, tasks, heartbeat_ttl_s=ttl_s, retention_s=retention_s)
