"""A task as the store reads it back: its record plus the hash fields only the store needs."""

from typing import Any

import msgspec

from jobcast.errors import NotFound
from jobcast.model.tasks import Task

STORED_FIELDS = ("doc", "rank", "job")  # of a task's hash, in the order `stored_from` reads them
decode_task = msgspec.json.Decoder(Task).decode


class Stored(msgspec.Struct, frozen=True):
    """A task as read from its hash: the record plus the fields only the store needs."""

    task: Task
    rank: int  # submission order, for listings and for the queue order within a priority
    job: str  # id of the task's latest arq job; empty for external tasks


def stored_from(task_id: str, fields: list[Any]) -> Stored:
    """A Stored from its hash's STORED_FIELDS, as read; NotFound when the task is gone."""
    doc, rank, job = fields
    if doc is None:
        raise NotFound(f"task {task_id!r} not found")
    return Stored(decode_task(doc), int(rank or 0), (job or b"").decode())
