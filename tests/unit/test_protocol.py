"""The WebSocket protocol as text in, text out (CONTRACT.md §4): client ops and server frames."""

import json

import pytest

from jobcast.events.protocol import (
    ErrorCode,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    decode_op,
    error_frame,
    event_frame,
    subscribed_frame,
)


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ('{"op": "subscribe", "task_id": "t1", "since": 4}', Subscribe(task_id="t1", since=4)),
        ('{"op": "subscribe", "type": "exports.pdf"}', Subscribe(type="exports.pdf")),
        ('{"op": "subscribe", "all": true}', Subscribe(all=True)),
        ('{"op": "unsubscribe", "owner": "alice"}', Unsubscribe(owner="alice")),
        ('{"op": "ping"}', Ping()),
    ],
)
def test_every_op_decodes(text: str, op: object) -> None:
    assert decode_op(text) == op


@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        ("{nope", ErrorCode.INVALID_JSON, "not valid JSON"),
        ("[1, 2]", ErrorCode.INVALID_FRAME, "JSON object with an `op`"),
        ('{"task_id": "t1"}', ErrorCode.INVALID_FRAME, "JSON object with an `op`"),
        ('{"op": "' + "x" * 500 + '"}', ErrorCode.UNKNOWN_OP, "..."),
        ('{"op": "subscribe"}', ErrorCode.INVALID_FRAME, "exactly one of"),
        ('{"op": "subscribe", "task_id": "t1", "type": "a"}', ErrorCode.INVALID_FRAME, "exactly one of"),
        ('{"op": "subscribe", "type": "a", "since": 1}', ErrorCode.INVALID_FRAME, "since goes with task_id"),
        ('{"op": "subscribe", "all": false}', ErrorCode.INVALID_FRAME, "all must be true"),
        ('{"op": "subscribe", "task_id": "t1", "since": -1}', ErrorCode.INVALID_FRAME, "since"),
        ('{"op": "ping", "extra": 1}', ErrorCode.INVALID_FRAME, "extra"),
        ("[" * 100_000 + "]" * 100_000, ErrorCode.INVALID_FRAME, ""),
    ],
)
def test_a_bad_frame_says_what_is_wrong_without_echoing_it(text: str, code: ErrorCode, detail: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_op(text)
    assert raised.value.code is code
    assert detail in raised.value.detail
    assert len(raised.value.detail) < 400


def test_an_event_frame_is_the_event_with_its_type_in_front() -> None:
    frame = event_frame(b'{"task_id":"t1","seq":3}')
    assert json.loads(frame) == {"type": "event", "task_id": "t1", "seq": 3}


def test_answers_echo_the_subscription_the_client_named() -> None:
    assert json.loads(subscribed_frame(Subscribe(task_id="t1"))) == {
        "type": "subscribed",
        "subscription": {"task_id": "t1"},
    }
    assert json.loads(error_frame(ErrorCode.NOT_FOUND, "no such task")) == {
        "type": "error",
        "code": "not_found",
        "detail": "no such task",
    }
