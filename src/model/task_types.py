"""Task types: what kinds of work exist, their parameter schema and how they run (CONTRACT.md §1)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from jobcast.model.numbers import parse_natural

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$"
TypeName = Annotated[str, Meta(pattern=NAME_PATTERN)]
TimeoutS = Annotated[float, Meta(gt=0, le=7 * 24 * 3600)]
MaxAttempts = Annotated[int, Meta(ge=1, le=100)]
Description = Annotated[str, Meta(max_length=10_000)]

DEFAULT_TIMEOUT_S = 300
DEFAULT_MAX_ATTEMPTS = 3


class Executor(StrEnum):
    """Who runs a type's tasks: jobcast's own workers, or an external program that claims them."""

    WORKER = "worker"  # run by jobcast's arq workers, declared in their code
    EXTERNAL = "external"  # a record some other service claims and updates over HTTP


class TaskType(msgspec.Struct, kw_only=True):
    """A kind of work. `workers_online` is filled in when read; it is never stored."""

    id: int
    name: str
    description: str = ""
    parameters_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    is_active: bool = True
    executor: Executor
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    created_at: datetime
    updated_at: datetime
    workers_online: int = 0


def type_id_or_name(ref: str) -> int | str:
    """A path's task-type reference: names start with a letter, so digits mean an id."""
    type_id = parse_natural(ref)  # too many digits for an id, and not a name either: not found
    return ref if type_id is None else type_id
