"""Tasks' arq jobs: their ids, their place in arq's queue, and the writes that queue, drop,
abort and claim them.

arq starts the queued job with the lowest score among those scored at or below "now". Scoring
every job below zero makes all of them ready at once, ordered by priority band, then by rank
(submission order) within a band. Bands of 2**43 keep every score an exact float.
"""

from typing import NamedTuple

from arq.constants import in_progress_key_prefix
from arq.jobs import serialize_job
from redis.commands.core import AsyncScript

from jobcast.model.tasks import Task
from jobcast.store import keys
from jobcast.store.atomic import Command, encode
from jobcast.store.stored import STORED_FIELDS, Stored, stored_from

ARQ_FUNCTION = "jobcast.run"
PRIORITY_BAND = 2**43
PRIORITY_LIMIT = 1001
WAKE: Command = ["PUBLISH", keys.WAKE_CHANNEL, ""]  # workers look at the queue and aborts at once


def job_id_for(task_id: str, seq: int, reissue_ms: int | None = None) -> str:
    """A fresh arq job id for each run of a task, so a retried task never meets its old job."""
    return f"{task_id}:{seq}" if reissue_ms is None else f"{task_id}:{seq}:{reissue_ms}"


def queue_score(priority: int, rank: int) -> int:
    """The job's score in arq's queue: lower priority numbers first, then first come."""
    return (priority - PRIORITY_LIMIT) * PRIORITY_BAND + rank


def enqueue(job_id: str, task: Task, rank: int, enqueue_ms: int, due_ms: int | None) -> list[Command]:
    """The job's payload names only the task; it waits in DEFERRED until due, else queues at once."""
    payload = serialize_job(ARQ_FUNCTION, (task.id,), {}, None, enqueue_ms, serializer=encode)
    writes = [["SET", keys.arq_job(job_id), payload.decode()]]
    if due_ms is not None and due_ms > enqueue_ms:
        return [*writes, ["ZADD", keys.DEFERRED, str(due_ms), job_id]]
    return [*writes, ["ZADD", keys.ARQ_QUEUE, str(queue_score(task.priority, rank)), job_id], WAKE]


def drop(job_id: str) -> list[Command]:
    """The job will never run: out of the queue and the deferred set, its keys gone."""
    if not job_id:
        return []
    return [
        ["ZREM", keys.ARQ_QUEUE, job_id],
        ["ZREM", keys.DEFERRED, job_id],
        ["DEL", keys.arq_job(job_id), keys.arq_in_progress(job_id)],
    ]


def abort(job_id: str, at_ms: int) -> list[Command]:
    """Ask arq to cancel the running job; scored by time so stale entries can be swept."""
    if not job_id:
        return []
    return [["ZADD", keys.ARQ_ABORTS, str(at_ms), job_id], WAKE]


Prefetched = dict[str, Stored | None]  # job id → its task as read at the claim (None: gone)


class Claimed(NamedTuple):
    """A job a worker claimed, with its task as read in the same step (None: the task is gone)."""

    job_id: str
    score: int
    stored: Stored | None


async def claim(
    script: AsyncScript, queue: str, candidates: list[str], most: int, now_ms: int, mark_ms: int
) -> list[Claimed]:
    """Claim up to `most` of `candidates` with lua/claim_jobs.lua: each still queued, due and
    not marked in progress by anyone gets arq's in-progress mark, in one step."""
    args = [now_ms, mark_ms, in_progress_key_prefix, most, keys.task(""), len(STORED_FIELDS)]
    reply = await script(keys=[queue], args=[*args, *STORED_FIELDS, *candidates])
    per_job = 2 + len(STORED_FIELDS)
    claimed = []
    for at in range(0, len(reply), per_job):
        raw_id, score, *fields = reply[at : at + per_job]
        job_id = raw_id.decode()
        stored = None if fields[0] is None else stored_from(job_id.split(":")[0], fields)
        claimed.append(Claimed(job_id, int(float(score)), stored))
    return claimed
