"""One WebSocket connection's conversation: decode each client frame, act on it, answer it."""

import contextlib
import logging
from collections.abc import Iterator

from redis.exceptions import RedisError

from jobcast.auth.access import ensure_may_watch_all, ensure_may_watch_type
from jobcast.errors import Forbidden, NotFound
from jobcast.events.client import ALL, Client, Group
from jobcast.events.hub import Hub
from jobcast.events.protocol import (
    PONG_FRAME,
    ErrorCode,
    Ping,
    ProtocolError,
    Subscribe,
    Target,
    Unsubscribe,
    decode_op,
    error_frame,
    subscribed_frame,
    unsubscribed_frame,
)
from jobcast.store.task_types import TypeStore

ME = "me"
log = logging.getLogger(__name__)


class Session:
    """One connection's client ops: subscribe, unsubscribe, ping, each answered with a frame."""

    __slots__ = ("_client", "_hub", "_max_subscriptions", "_types")

    def __init__(self, hub: Hub, types: TypeStore, client: Client, max_subscriptions: int) -> None:
        self._hub = hub
        self._types = types
        self._client = client
        self._max_subscriptions = max_subscriptions

    async def handle(self, text: str) -> None:
        """Answer one text frame; every bad frame gets an `error` frame and the session goes on."""
        with self._errors_answered():
            match decode_op(text):
                case Ping():
                    self._client.send(PONG_FRAME)
                case Subscribe() as target:
                    await self.subscribe(target)
                case Unsubscribe() as target:
                    self._unsubscribe(target)

    async def subscribe_or_answer(self, target: Target) -> bool:
        """Subscribe; on failure answer with an `error` frame and return False."""
        with self._errors_answered():
            await self.subscribe(target)
            return True
        return False

    def attach(self) -> None:
        self._hub.attach(self._client)

    def detach(self) -> None:
        self._hub.detach(self._client)

    @contextlib.contextmanager
    def _errors_answered(self) -> Iterator[None]:
        try:
            yield
        except ProtocolError as error:
            self._client.send(error_frame(error.code, error.detail))
        except NotFound as error:
            self._client.send(error_frame(ErrorCode.NOT_FOUND, error.detail))
        except Forbidden as error:
            self._client.send(error_frame(ErrorCode.FORBIDDEN, error.detail))
        except (RedisError, OSError) as error:
            log.warning("websocket op failed: %s", error)
            self._client.send(error_frame(ErrorCode.UNAVAILABLE, "the task store is unavailable; retry"))

    async def subscribe(self, target: Target) -> None:
        client = self._client
        group = None if target.task_id is not None else self._group(target)
        already = target.task_id in client.tasks if group is None else group in client.groups
        if client.subscription_count >= self._max_subscriptions and not already:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"at most {self._max_subscriptions} subscriptions per connection",
            )
        if target.task_id is not None:
            await self._hub.watch_task(client, target.task_id, target.since, subscribed_frame(target))
            return
        assert group is not None
        if target.type is not None and await self._types.find_name(target.type) is None:
            raise NotFound(f"task type {target.type!r} not found")
        self._hub.watch_group(client, group)
        client.send(subscribed_frame(target))

    def _unsubscribe(self, target: Target) -> None:
        client, hub = self._client, self._hub
        if target.task_id is not None:
            found = hub.unwatch_task(client, target.task_id)
        else:
            found = hub.unwatch_group(client, self._group(target))
        if not found:
            raise ProtocolError(ErrorCode.NOT_SUBSCRIBED, "there is no such subscription to cancel")
        client.send(unsubscribed_frame(target))

    def _group(self, target: Target) -> Group:
        """The tasks a type, owner or all subscription covers; checks the caller may watch them."""
        principal = self._client.principal
        if target.type is not None:
            ensure_may_watch_type(principal, target.type)
            return ("type", target.type)
        if target.owner is not None:
            if target.owner in (ME, principal.name):
                return ("owner", principal.name)
            if not principal.is_admin:
                raise Forbidden("only admins may subscribe to another owner's tasks")
            return ("owner", target.owner)
        ensure_may_watch_all(principal)
        return ALL
