"""Who may do what: the one set of checks HTTP and WebSocket share (CONTRACT.md §5)."""

from jobcast.errors import Forbidden, NotFound
from jobcast.model.principals import Principal, Role
from jobcast.model.tasks import Event, Task, TaskStatus, public_event


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


def ensure_may_submit(principal: Principal) -> None:
    if principal.role is Role.WORKER:
        raise Forbidden("a worker token claims and updates tasks; submit with a submitter or admin token")


def ensure_may_delete(principal: Principal, task: Task) -> None:
    """Deleting is for the task's owner and admins; a worker may only finish or cancel it."""
    ensure_visible(principal, task)
    if principal.role is Role.WORKER:
        raise Forbidden("a worker token may not delete tasks")


def ensure_may_filter_owner(principal: Principal, owner: str | None) -> None:
    if owner is not None and owner != principal.name and not principal.is_admin:
        raise Forbidden("only admins may list the tasks of another owner")


def ensure_may_watch_type(principal: Principal, type_name: str) -> None:
    if principal.role is Role.WORKER and type_name not in principal.types:
        raise Forbidden(f"this worker token does not serve {type_name!r}")


def ensure_may_watch_all(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only admins may subscribe to all tasks")


def ensure_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"only admins may {action}")


def sees_tracebacks(principal: Principal) -> bool:
    """A handler's traceback shows the server's code and paths: only admins read it."""
    return principal.is_admin


def redacted(principal: Principal, events: list[Event]) -> list[Event]:
    """The events as this caller may read them."""
    if sees_tracebacks(principal):
        return events
    return [public_event(event) for event in events]
