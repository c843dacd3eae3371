"""The error tree: domain errors are raised where they happen and mapped to HTTP once, in app."""

from typing import Any


class JobcastError(Exception):
    """Base of every error a caller can cause; `detail` is a sentence meant for the caller."""

    def __init__(self, detail: str, extra: Any = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(JobcastError):
    """The request does not fit the endpoint's own shape."""


class NotFound(JobcastError):
    """No such thing, or the caller may not see it."""


class Forbidden(JobcastError):
    """The caller may see the thing but not do this to it."""


class AlreadyExists(JobcastError):
    """A unique name is taken."""


class Inactive(JobcastError):
    """The task type is switched off."""


class InvalidParameters(JobcastError):
    """Task parameters fail their type's schema; `extra` lists each failure."""


class InvalidSchema(JobcastError):
    """A parameters_schema is not a valid JSON Schema."""


class InvalidTransition(JobcastError):
    """The change is not legal from the task's current state."""


class StaleAttempt(InvalidTransition):
    """A write from an attempt that is no longer the task's current one."""


class TooManyRequests(JobcastError):
    """The caller is over a quota; it may try again after `retry_after_s`."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Unavailable(JobcastError):
    """Redis cannot be reached; the caller should retry later."""


def describe(error: BaseException) -> str:
    """`Type: message`, as a task's error_message shows what its handler raised."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
