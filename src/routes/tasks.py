"""/api/tasks (CONTRACT.md §2): submit, list, read, update, cancel, retry, delete, history."""

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from jobcast.errors import BadRequest
from jobcast.model.changes import TaskUpdate
from jobcast.model.numbers import parse_natural
from jobcast.model.submissions import TaskSubmission
from jobcast.model.tasks import Event, Task, TaskStatus, task_path
from jobcast.routes.celery_status import CeleryStatus, celery_status
from jobcast.routes.dependencies import ActionsDep, Caller
from jobcast.routes.responses import SECURITY, errors
from jobcast.store.tasks import TaskQuery

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", min_length=1, max_length=255, required=False,
                    description="A repeat with the same key and owner within 24 h returns the first task."),
]  # fmt: skip
HISTORY_LIMIT = "Jobcast-History-Limit"
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Rows per page.")]
Cursor = Annotated[str | None, QueryParameter(description="From the `Link: rel=next` of the previous page.")]


SUBMIT_RESPONSES = {
    200: ResponseSpec(Task, description="A repeat with the same Idempotency-Key: the first task."),
    201: ResponseSpec(Task, description="A task of an external type, waiting to be claimed."),
    **errors(400, 403, 404, 413, 422, 429),
}


class TaskController(Controller):
    """The task endpoints; each is a thin call into TaskActions."""

    path = "/api/tasks"
    tags = ("tasks",)
    security = SECURITY

    @post("/", summary="Submit a task", status_code=202, responses=SUBMIT_RESPONSES)
    async def submit(
        self,
        data: JSONBody[TaskSubmission],
        actions: ActionsDep,
        principal: Caller,
        idempotency_key: IdempotencyKey,
    ) -> Response[Task]:
        """202 for a worker type (queued), 201 for an external type, 200 for an idempotent repeat."""
        submitted = await actions.submit(principal, data, idempotency_key)
        status = (202 if submitted.queued else 201) if submitted.created else 200
        task = submitted.task
        return Response(task, status_code=status, headers={"Location": task_path(task.id)})

    @get("/", summary="List tasks, newest first", responses=errors(400, 403))
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        actions: ActionsDep,
        principal: Caller,
        status: FromQuery[str | None] = None,
        type_name: Annotated[str | None, QueryParameter(name="type")] = None,
        task_type_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        owner: FromQuery[str | None] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response[list[Task]]:
        query = TaskQuery(_statuses(status), owner=owner, limit=limit, cursor=_cursor(cursor))
        page = await actions.page(principal, query, type_name, task_type_id)
        headers = {}
        if page.next_cursor is not None:
            params = {**request.query_params.dict(), "cursor": [str(page.next_cursor)]}
            headers["Link"] = f'<{request.url.path}?{urlencode(params, doseq=True)}>; rel="next"'
        return Response(page.tasks, headers=headers)

    @get("/{task_id:str}", summary="Read a task", responses=errors(404))
    async def read(self, task_id: FromPath[str], actions: ActionsDep, principal: Caller) -> Task:
        return await actions.get(principal, task_id)

    @put(
        "/{task_id:str}",
        summary="Update some fields of a task",
        responses=errors(400, 403, 404, 409, 413, 422),
    )
    async def update(
        self, task_id: FromPath[str], data: JSONBody[TaskUpdate], actions: ActionsDep, principal: Caller
    ) -> Task:
        return await actions.update(principal, task_id, data)

    @delete(
        "/{task_id:str}",
        summary="Delete a task (a running one is cancelled first)",
        responses=errors(403, 404),
    )
    async def remove(self, task_id: FromPath[str], actions: ActionsDep, principal: Caller) -> None:
        await actions.delete(principal, task_id)

    @post("/{task_id:str}/cancel", summary="Cancel a task", status_code=200, responses=errors(404, 409))
    async def cancel(self, task_id: FromPath[str], actions: ActionsDep, principal: Caller) -> Task:
        return await actions.cancel(principal, task_id)

    @post(
        "/{task_id:str}/retry",
        summary="Run a failed or cancelled task again",
        status_code=200,
        responses=errors(400, 404, 409),
    )
    async def retry(self, task_id: FromPath[str], actions: ActionsDep, principal: Caller) -> Task:
        return await actions.retry(principal, task_id)

    @get(
        "/{task_id:str}/events",
        summary="A task's event history, in seq order",
        description=(
            f"At most JOBCAST_HISTORY_MAX events are kept per task, the newest; the `{HISTORY_LIMIT}` "
            "header says how many. A history whose first `seq` is above 1 lost its oldest events."
        ),
        responses=errors(404),
        response_headers=[
            ResponseHeader(
                name=HISTORY_LIMIT, description="Events kept per task, at most", documentation_only=True
            )
        ],
    )
    async def events(
        self, task_id: FromPath[str], actions: ActionsDep, principal: Caller
    ) -> Response[list[Event]]:
        history = await actions.events(principal, task_id)
        return Response(history, headers={HISTORY_LIMIT: str(actions.tasks.limits.history_max)})

    @get(
        "/{task_id:str}/status",
        summary="A task in the shape Celery-era polling clients read",
        responses=errors(404),
    )
    async def status(self, task_id: FromPath[str], actions: ActionsDep, principal: Caller) -> CeleryStatus:
        return celery_status(await actions.get(principal, task_id))


def _statuses(raw: str | None) -> list[TaskStatus]:
    if raw is None:
        return []
    try:
        return [TaskStatus(part.strip()) for part in raw.split(",")]
    except ValueError:
        valid = ", ".join(TaskStatus)
        raise BadRequest(f"status must be one or more of {valid}, comma-separated") from None


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    cursor = parse_natural(raw)
    if cursor is None:
        raise BadRequest("cursor is not valid: take it from the Link header of the previous page")
    return cursor
