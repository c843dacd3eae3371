"""Every Redis key and channel jobcast uses, one function each."""

import hashlib

from arq.constants import abort_jobs_ss, default_queue_name, in_progress_key_prefix, job_key_prefix

PREFIX = "jobcast:"
ANY = "*"

EVENTS_CHANNEL = PREFIX + "events"
TASK_RANK = PREFIX + "task-rank"
TYPE_IDS = PREFIX + "type-ids"
TYPE_NAMES = PREFIX + "type-names"
TYPES = PREFIX + "types"
TYPES_VERSION = (
    PREFIX + "types-version"
)  # counts every write to any type: a cached copy is current while it stands
WORKERS = PREFIX + "workers"
CANCEL_DEADLINES = PREFIX + "cancel-deadlines"
TOKENS = PREFIX + "tokens"  # hash: token name → its record (never the token itself)
REVOCATIONS_CHANNEL = PREFIX + "revocations"  # a revoked token's name, for every API instance
WAKE_CHANNEL = PREFIX + "wake"  # a job became ready or an abort was asked: workers look at once
DEFERRED = PREFIX + "deferred"  # arq job ids waiting for a backoff, scored by when they may run (ms)
FINISHED = PREFIX + "finished"  # finished task ids scored by when they finished (ms), for retention
TALLIES = PREFIX + "tallies"  # hash: cluster-wide counters (see tallies.py), never expires

# arq's own keys: jobcast enqueues and aborts jobs in the same atomic step as the task change.
ARQ_QUEUE = default_queue_name
ARQ_ABORTS = abort_jobs_ss


def task(task_id: str) -> str:
    """Hash holding a task's record (`doc`), `seq`, listing `rank` and current arq `job` id."""
    return f"{PREFIX}task:{task_id}"


def task_events(task_id: str) -> str:
    """List of the task's events, oldest first."""
    return f"{PREFIX}task:{task_id}:events"


def task_index(status: str = ANY, type_id: int | str = ANY, owner: str = ANY) -> str:
    """Sorted set of task ids scored by rank for one combination of filters (`*` = any)."""
    return f"{PREFIX}tasks:{status}:{type_id}:{owner}"


def task_indexes(status: str, type_id: int, owner: str) -> list[str]:
    """The indexes a task with these fields belongs to: every combination of filter or any."""
    return status_indexes(status, type_id, owner) + status_indexes(ANY, type_id, owner)


def status_indexes(status: str, type_id: int, owner: str) -> list[str]:
    """The four of them that name this status: the ones a status change moves the task between."""
    prefix = f"{PREFIX}tasks:{status}:"
    return [
        f"{prefix}{type_id}:{owner}",
        f"{prefix}{type_id}:{ANY}",
        f"{prefix}{ANY}:{owner}",
        f"{prefix}{ANY}:{ANY}",
    ]


def idempotency(owner: str, key: str) -> str:
    """Maps an owner's Idempotency-Key to the task it created (hashed: both are free text)."""
    digest = hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()
    return f"{PREFIX}idempotency:{digest}"


def task_type(type_id: int) -> str:
    """String holding a task type's record."""
    return f"{PREFIX}type:{type_id}"


def type_workers(name: str) -> str:
    """Sorted set of worker ids serving a type, scored by heartbeat expiry (ms)."""
    return f"{PREFIX}type-workers:{name}"


def worker_tasks(worker_id: str) -> str:
    """Set of the task ids whose current attempt runs on a worker."""
    return f"{PREFIX}worker-tasks:{worker_id}"


def worker(worker_id: str) -> str:
    """String holding a live worker's description; expires with its heartbeat."""
    return f"{PREFIX}worker:{worker_id}"


def throughput(minute: int) -> str:
    """Hash of what happened in one minute (since the epoch): submitted, completed, failed, cancelled."""
    return f"{PREFIX}throughput:{minute}"


def arq_job(job_id: str) -> str:
    """arq's job payload key."""
    return job_key_prefix + job_id


def arq_in_progress(job_id: str) -> str:
    """arq's marker that a worker holds the job; expires unless its worker heartbeats."""
    return in_progress_key_prefix + job_id


def token_hash(digest: str) -> str:
    """Maps a token's SHA-256 to its name: how a presented token is looked up."""
    return f"{PREFIX}token-hash:{digest}"


def connection_slots(principal_name: str) -> str:
    """Sorted set of a principal's open WebSockets over all API instances, scored by expiry (ms)."""
    return f"{PREFIX}connections:{principal_name}"


def submissions(principal_name: str, window: int) -> str:
    """Counter of a principal's submissions in one rate window."""
    return f"{PREFIX}submissions:{principal_name}:{window}"
