"""A WebSocket connection as the hub sees it: its subscriptions and its bounded outbox."""

import asyncio

from jobcast.events.outbox import END_OF_STREAM, Outbox
from jobcast.model.principals import Principal
from jobcast.store.envelope import Envelope

Group = tuple[str, str]  # ("type", name), ("owner", name) or ALL: the tasks a subscription covers
ALL: Group = ("all", "")

NORMAL = 1000
POLICY_VIOLATION = 1008
TRY_AGAIN = 1013


class TaskWatch:
    """A client's subscription to one task: events are held until its snapshot is sent."""

    __slots__ = ("held", "last_seq")

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.held: list[tuple[Envelope, str]] = []


class Client:
    """One WebSocket connection as the hub sees it: its subscriptions and its outbox. Slotted and
    without tasks or events of its own: an API process holds thousands of them."""

    __slots__ = (
        "close_code",
        "close_on_final",
        "close_reason",
        "end_code",
        "end_reason",
        "groups",
        "outbox",
        "peer_gone",
        "principal",
        "tasks",
        "token_digest",
    )

    def __init__(
        self, principal: Principal, buffer: int, *, close_on_final: bool = False, token_digest: str = ""
    ) -> None:
        self.principal = principal
        self.token_digest = token_digest  # of the token it connected with; "" with auth off
        self.outbox = Outbox(buffer)
        self.peer_gone = False
        self.tasks: dict[str, TaskWatch] = {}
        self.groups: set[Group] = set()
        self.close_on_final = close_on_final
        self.close_code: int | None = None
        self.close_reason = ""
        self.end_code = NORMAL
        self.end_reason = "task finished"

    def send(self, frame: str) -> None:
        """Queue a frame; a full outbox means the client cannot keep up: close it."""
        if self.close_code is not None:
            return
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(TRY_AGAIN, "client too slow: its buffer is full")

    def end(self, code: int = NORMAL, reason: str = "task finished") -> None:
        """Close with `code` once the frames already queued are sent."""
        self.end_code, self.end_reason = code, reason
        self.send(END_OF_STREAM)  # queued last: the sender closes once everything before it is sent

    def close(self, code: int, reason: str = "") -> None:
        """Close now, dropping whatever is still queued."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.outbox.close()

    def gone(self) -> None:
        """The peer went away (or stopped being read): nothing more to send it."""
        self.peer_gone = True
        self.outbox.close()

    @property
    def subscription_count(self) -> int:
        return len(self.tasks) + len(self.groups)
