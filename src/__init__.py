"""jobcast: long-running jobs with live status over WebSocket.

A handler module needs only these names: `@task` declares a task type, `TaskContext` (or
`BlockingContext` for code that must run in a child process) reports progress, and
`TaskDefinition` is what `@task` returns. `jobcast worker --tasks MODULE` serves the module.
"""

from jobcast.workers.blocking import BlockingContext
from jobcast.workers.context import TaskContext
from jobcast.workers.definition import TaskDefinition, task

__all__ = ["BlockingContext", "TaskContext", "TaskDefinition", "task"]
