"""@task: a handler, the msgspec Struct it takes as parameters, and how it runs."""

import importlib
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import msgspec

from jobcast.model.task_types import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S, NAME_PATTERN

if TYPE_CHECKING:
    from jobcast.workers.blocking import BlockingContext
    from jobcast.workers.context import TaskContext

P = TypeVar("P", bound=msgspec.Struct)
Handler = Callable[["TaskContext", P], Awaitable[Any]]
BlockingHandler = Callable[["BlockingContext", P], Any]

MAX_TIMEOUT_S = 7 * 24 * 3600
MAX_ATTEMPTS = 100


class TaskDefinition(Generic[P]):
    """A declared handler; calling it calls the handler."""

    def __init__(
        self,
        name: str,
        handler: Handler[P] | BlockingHandler[P],
        parameters_type: type[P],
        *,
        timeout_s: float,
        max_attempts: int,
        blocking: bool,
    ) -> None:
        self.name = name
        self.handler = handler
        self.parameters_type = parameters_type
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.blocking = blocking  # runs in a child process (jobcast.workers.blocking)
        self.description = inspect.getdoc(handler) or ""

    @property
    def module(self) -> str:
        return self.handler.__module__

    def __call__(self, ctx: "TaskContext", parameters: P) -> Awaitable[Any]:
        assert not self.blocking, "a blocking handler runs in the worker's process pool"
        return typing.cast(Handler[P], self.handler)(ctx, parameters)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


@overload
def task(
    name: str, *, timeout_s: float = ..., max_attempts: int = ..., blocking: Literal[False] = False
) -> Callable[[Handler[P]], TaskDefinition[P]]: ...


@overload
def task(
    name: str, *, timeout_s: float = ..., max_attempts: int = ..., blocking: Literal[True]
) -> Callable[[BlockingHandler[P]], TaskDefinition[P]]: ...


def task(
    name: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    blocking: bool = False,
) -> Callable[[Any], TaskDefinition[Any]]:
    """Declare `async def handler(ctx: TaskContext, params: SomeStruct)` as task type `name`;
    with `blocking=True`, a plain `def handler(ctx: BlockingContext, params: SomeStruct)` for
    CPU-bound work, run in a child process.

    The Struct's JSON Schema becomes the type's parameters_schema when a worker starts.
    `timeout_s` and `max_attempts` seed the type; after that an operator's PUT wins.
    """
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"task name {name!r} must match {NAME_PATTERN}")
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s of {name!r} must be in (0, {MAX_TIMEOUT_S}]")
    if not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts of {name!r} must be in [1, {MAX_ATTEMPTS}]")

    def declare(handler: Any) -> TaskDefinition[Any]:
        if inspect.iscoroutinefunction(handler) == blocking:
            shape = "a plain `def`" if blocking else "an `async def`"
            raise TypeError(f"handler of {name!r} must be {shape} (blocking={blocking})")
        parameters_type = _parameters_type(name, handler)
        return TaskDefinition(
            name, handler, parameters_type, timeout_s=timeout_s, max_attempts=max_attempts, blocking=blocking
        )

    return declare


def discover(module_names: Iterable[str]) -> dict[str, TaskDefinition[Any]]:
    """Every @task in the named modules, by name; a name declared twice is an error."""
    found: dict[str, TaskDefinition[Any]] = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, TaskDefinition):
                other = found.setdefault(value.name, value)
                if other is not value:
                    raise ValueError(f"task {value.name!r} is declared twice ({module_name})")
    return found


def _parameters_type(name: str, handler: Callable[..., Any]) -> type[Any]:
    parameters = list(inspect.signature(handler).parameters)
    hints = typing.get_type_hints(handler)
    annotation = hints.get(parameters[1]) if len(parameters) == 2 else None
    if not (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
        raise TypeError(f"handler of {name!r} must be `f(ctx, params: SomeStruct)`")
    return annotation
