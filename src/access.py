"""Who may do what: principals and the one set of checks HTTP and WebSocket share (CONTRACT.md §5).

Authentication attaches a Principal to each connection; with auth off every caller is
ANONYMOUS, an admin.
"""

from enum import StrEnum

import msgspec

from src.errors import Forbidden, NotFound
from src.tasks import Task, TaskStatus


class Role(StrEnum):
    ADMIN = "admin"  # everything
    SUBMITTER = "submitter"  # its own tasks
    WORKER = "worker"  # tasks of the types it serves


class Principal(msgspec.Struct, frozen=True):
    name: str
    role: Role
    types: frozenset[str] = frozenset()  # the types a worker serves

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ANONYMOUS = Principal("anonymous", Role.ADMIN)


def can_see(principal: Principal, owner: str, task_type: str) -> bool:
    """Whether a task with this owner and type exists for the caller at all."""
    if principal.role is Role.WORKER:
        return task_type in principal.types
    return principal.is_admin or owner == principal.name


def ensure_visible(principal: Principal, task: Task) -> Task:
    """The task, or NotFound: another owner's task does not exist for this caller."""
    if not can_see(principal, task.owner, task.type):
        raise NotFound(f"task {task.id!r} not found")
    return task


def ensure_may_write(principal: Principal, task: Task, fields: set[str]) -> None:
    """Status, progress, result and error are for workers and admins; a submitter may edit
    only the priority and metadata of its own pending task."""
    ensure_visible(principal, task)
    if principal.role is not Role.SUBMITTER:
        return
    if not fields <= {"priority", "metadata"} or task.status is not TaskStatus.PENDING:
        raise Forbidden("a submitter may change only the priority and metadata of its own pending task")


def ensure_may_filter_owner(principal: Principal, owner: str | None) -> None:
    if owner is not None and owner != principal.name and not principal.is_admin:
        raise Forbidden("only admins may list the tasks of another owner")


def ensure_may_watch_all(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only admins may subscribe to all tasks")


def ensure_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"only admins may {action}")
