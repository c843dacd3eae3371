"""Workers: declare handlers with @task, report with ctx.progress; `jobcast worker` runs them."""

from src.workers.blocking import BlockingContext
from src.workers.context import TaskContext
from src.workers.definition import TaskDefinition, task

__all__ = ["BlockingContext", "TaskContext", "TaskDefinition", "task"]
