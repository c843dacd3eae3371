"""The WebSocket protocol (CONTRACT.md §4): client ops as one tagged union, server frames as bytes."""

from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from jobcast.model.tasks import Task

TaskId = Annotated[str, Meta(min_length=1, max_length=200)]
Seq = Annotated[int, Meta(ge=0)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]


EVENT_FRAME_PREFIX = '{"type":"event",'  # an event frame is the event with this in front


class Target(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """What a subscription is on: exactly one of a task, a type, an owner, or all tasks."""

    task_id: TaskId | None = None
    since: Seq | None = None
    type: Name | None = None
    owner: Name | None = None
    all: bool | None = None

    def __post_init__(self) -> None:
        chosen = [self.task_id, self.type, self.owner, self.all]
        if sum(value is not None for value in chosen) != 1:
            raise ValueError("name exactly one of task_id, type, owner or all")
        if self.since is not None and self.task_id is None:
            raise ValueError("since goes with task_id")
        if self.all is False:
            raise ValueError("all must be true")


class Subscribe(Target, tag="subscribe", tag_field="op"):
    pass


class Unsubscribe(Target, tag="unsubscribe", tag_field="op"):
    pass


class Ping(msgspec.Struct, tag="ping", tag_field="op", forbid_unknown_fields=True):
    pass


Op = Subscribe | Unsubscribe | Ping
OP_NAMES = frozenset({"subscribe", "unsubscribe", "ping"})


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    UNKNOWN_OP = "unknown_op"
    INVALID_FRAME = "invalid_frame"
    BINARY_FRAME = "binary_frame"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    NOT_SUBSCRIBED = "not_subscribed"
    UNAVAILABLE = "unavailable"
    EVENTS_MISSED = "events_missed"


class ProtocolError(Exception):
    """A client frame the server answers with an `error` frame; the connection stays open."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


_op_decoder: msgspec.json.Decoder[Op] = msgspec.json.Decoder(Op)
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def decode_op(text: str) -> Op:
    """Parse one client frame; ProtocolError says what is wrong with it."""
    try:
        return _op_decoder.decode(text)
    except msgspec.ValidationError as error:
        raise _explain(text, error) from None
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.INVALID_JSON, "the frame is not valid JSON") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.INVALID_FRAME, "the frame is nested too deeply") from None


def _explain(text: str, error: msgspec.ValidationError) -> ProtocolError:
    try:
        frame = _decode_any(text)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # too large, cut off, too deep
        frame = {}
    if not isinstance(frame, dict) or "op" not in frame:
        return ProtocolError(ErrorCode.INVALID_FRAME, f"a frame is a JSON object with an `op` ({error})")
    op = frame["op"]
    if not isinstance(op, str) or op not in OP_NAMES:
        known = ", ".join(sorted(OP_NAMES))
        return ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown op {_shown(op)}: use one of {known}")
    return ProtocolError(ErrorCode.INVALID_FRAME, f"invalid {op} frame: {error}")


def _shown(value: Any, max_chars: int = 60) -> str:
    """A client's value quoted back to it, cut short: an answer never echoes a whole frame."""
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def target_keys(target: Target) -> dict[str, Any]:
    """The keys the client sent, echoed back in `subscribed` frames."""
    return {name: value for name in Target.__struct_fields__ if (value := getattr(target, name)) is not None}


def subscribed_frame(target: Target) -> str:
    return _text({"type": "subscribed", "subscription": target_keys(target)})


def unsubscribed_frame(target: Target) -> str:
    return _text({"type": "unsubscribed", "subscription": target_keys(target)})


def event_frame(event_json: bytes) -> str:
    """`{"type": "event", ...EVENT}` from an encoded event, without decoding it: the one place
    an event frame is made."""
    return EVENT_FRAME_PREFIX + event_json[1:].decode()


def snapshot_frame(task: Task) -> str:
    return _text({"type": "snapshot", "task": task})


def error_frame(code: ErrorCode, detail: str) -> str:
    return _text({"type": "error", "code": code, "detail": detail})


def _text(frame: dict[str, Any]) -> str:
    return _encode(frame).decode()


PONG_FRAME = _text({"type": "pong"})
