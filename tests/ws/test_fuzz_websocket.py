"""Random WebSocket frames against a real `jobcast api` process (auth on): bad JSON, wrong types,
huge numbers, deep nesting, unknown ops, binary frames, oversized frames. Each gets an answer
the protocol documents (an `error` frame with a known code, or an op's own answer) or, when
over 64 KiB, the close code 1009; the server stays up, and a bystander subscribed all along
still gets its events."""

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from jobcast.events.protocol import ErrorCode
from jobcast.store import keys
from tests.helpers.callers import ADMIN, OWNER, TYPE, SecuredApi, secured_api

MAX_FRAME_BYTES = 64 * 1024
WAIT_S = 15.0
ANSWERS = {"error", "subscribed", "unsubscribed", "pong"}
ERROR_CODES = {str(code) for code in ErrorCode}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars | st.integers(min_value=10**30, max_value=10**400),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
op_names = st.sampled_from(["subscribe", "unsubscribe", "ping", "Subscribe", "publish", ""]) | json_values
op_frames = st.fixed_dictionaries(
    {"op": op_names},
    optional={
        "task_id": st.text(max_size=300) | json_values,
        "since": st.integers() | json_values,
        "type": st.sampled_from([TYPE, "other", "nope"]) | json_values,
        "owner": st.sampled_from(["me", "alice", "bob"]) | json_values,
        "all": st.booleans() | json_values,
        "extra": json_values,
    },
).map(json.dumps)
deep_frames = st.builds(
    lambda wrapper, depth: wrapper.replace("@", "[" * depth + "]" * depth),
    st.sampled_from(["@", '{"op": @}', '{"op": "subscribe", "task_id": @}', '{"x": @, "op": "ping"}']),
    st.integers(min_value=1, max_value=30_000),
)
big_frames = st.integers(min_value=MAX_FRAME_BYTES - 100, max_value=MAX_FRAME_BYTES + 100).map(
    lambda size: json.dumps({"op": "ping", "pad": "x" * (size - 24)})
)
FRAMES = st.one_of(
    op_frames,
    st.text(max_size=200),
    json_values.map(json.dumps),
    deep_frames,
    big_frames,
    st.binary(max_size=200),
)


class Fuzzer:
    """One connection, reopened whenever the server closes it (as it must for oversized frames)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._open()

    def _open(self) -> None:
        self._closing = contextlib.ExitStack()
        self.connection: ClientConnection = self._closing.enter_context(
            connect(self.url, open_timeout=WAIT_S)
        )

    def close(self) -> None:
        self._closing.close()

    def answer(self, frame: str | bytes) -> list[dict[str, Any]] | int | None:
        """The frames the server sends back up to the pong that follows, or its close code."""
        try:
            self.connection.send(frame)
            self.connection.send(json.dumps({"op": "ping"}))
            frames = []
            while not frames or frames[-1].get("type") != "pong" or (len(frames) < 2 and _is_ping(frame)):
                frames.append(json.loads(self.connection.recv(timeout=WAIT_S)))
            return frames
        except ConnectionClosed as closed:
            code = None if closed.rcvd is None else closed.rcvd.code  # None: no close frame
        self.close()
        self._open()
        return code


@pytest.fixture(scope="module")
def target(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(redis_binary, tmp_path_factory.mktemp("ws-fuzz")) as api:
        yield api


@pytest.fixture(scope="module")
def task_id(target: SecuredApi) -> str:
    """The task the bystander watches."""
    return target.submit()


@pytest.fixture(scope="module")
def fuzzer(target: SecuredApi) -> Iterator[Fuzzer]:
    fuzzer = Fuzzer(target.ws_url + "/ws" + target.callers.query(OWNER))
    yield fuzzer
    fuzzer.close()


@pytest.fixture(scope="module")
def bystander(target: SecuredApi, task_id: str) -> Iterator[ClientConnection]:
    """A client of another principal, subscribed to a task before the fuzzing starts."""
    with connect(target.ws_url + "/ws" + target.callers.query(ADMIN), open_timeout=WAIT_S) as connection:
        connection.send(json.dumps({"op": "subscribe", "task_id": task_id}))
        assert json.loads(connection.recv(timeout=WAIT_S))["type"] == "subscribed"
        assert json.loads(connection.recv(timeout=WAIT_S))["type"] == "snapshot"
        yield connection


@given(frame=FRAMES)
@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_frame_gets_a_documented_answer(
    frame: str | bytes, fuzzer: Fuzzer, bystander: ClientConnection
) -> None:
    answer = fuzzer.answer(frame)
    if isinstance(frame, str) and len(frame.encode()) > MAX_FRAME_BYTES:
        assert answer == 1009
        return
    assert isinstance(answer, list), f"closed with {answer}"
    first = answer[0]
    assert first["type"] in ANSWERS, first
    if isinstance(frame, bytes):
        assert first == {"type": "error", "code": "binary_frame", "detail": first["detail"]}
    if first["type"] == "error":
        assert first["code"] in ERROR_CODES
        assert isinstance(first["detail"], str)
        assert first["detail"]
        assert "Traceback" not in first["detail"]


def test_after_the_fuzzing_the_server_is_up_and_the_bystander_still_served(
    target: SecuredApi, task_id: str, fuzzer: Fuzzer, bystander: ClientConnection
) -> None:
    """Garbage published on the events channel itself (anyone with Redis access could) is
    ignored too: the next real event still arrives."""
    with redis.Redis.from_url(target.redis_url) as client:
        for garbage in [b"\xff\xfe", b"{}", b'{"task_id": 1}', b"[" * 5000]:
            client.publish(keys.EVENTS_CHANNEL, garbage)
    assert target.process.alive()
    update = httpx.put(
        f"{target.http_url}/api/tasks/{task_id}",
        json={"priority": 3},
        headers=target.callers.headers(ADMIN),
        timeout=WAIT_S,
    )
    assert update.status_code == 200, update.text
    event = json.loads(bystander.recv(timeout=WAIT_S))
    assert (event["type"], event["task_id"], event["priority"]) == ("event", task_id, 3)
    answer = fuzzer.answer(json.dumps({"op": "ping"}))
    assert isinstance(answer, list)
    assert [frame for frame in answer if frame["type"] == "pong"] == [{"type": "pong"}] * 2


def _is_ping(frame: str | bytes) -> bool:
    """Whether the fuzzed frame is itself a valid ping, which gets a pong of its own."""
    try:
        return isinstance(frame, str) and json.loads(frame) == {"op": "ping"}
    except (ValueError, RecursionError):
        return False
