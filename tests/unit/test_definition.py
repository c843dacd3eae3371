"""@task declares a handler; mistakes in a declaration fail at import, with a clear message."""

from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from jobcast import TaskContext, task
from jobcast.demo import SleepParameters
from jobcast.model.parameters import struct_schema
from jobcast.workers.definition import discover


class Params(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    size: int = 1


async def handler(ctx: TaskContext, params: Params) -> None:
    """First line.

    More."""


def test_a_declaration_keeps_its_settings_and_stays_callable() -> None:
    definition = task("a.b", timeout_s=5, max_attempts=2)(handler)
    assert (definition.name, definition.timeout_s, definition.max_attempts) == ("a.b", 5, 2)
    assert definition.parameters_type is Params
    assert definition.description.startswith("First line.")
    assert definition.handler is handler


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"name": "9lives"}, "must match"),
        ({"name": "ok", "timeout_s": 0}, "timeout_s"),
        ({"name": "ok", "max_attempts": 0}, "max_attempts"),
        ({"name": "ok", "max_attempts": 101}, "max_attempts"),
    ],
)
def test_bad_settings_are_refused(arguments: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        task(**arguments)


async def no_struct(ctx: TaskContext, params: dict[str, Any]) -> None: ...


async def one_argument(ctx: TaskContext) -> None: ...


@pytest.mark.parametrize("bad", [no_struct, one_argument])
def test_a_handler_must_take_a_struct(bad: Any) -> None:
    with pytest.raises(TypeError, match="SomeStruct"):
        task("ok")(bad)


def test_discover_finds_the_tasks_of_a_module() -> None:
    assert sorted(discover(["tests.helpers.example_tasks"])) == [
        "test.crunch",
        "test.hog",
        "test.sum",
        "test.wait",
    ]
    assert list(discover(["jobcast.demo"])) == ["demo.sleep"]


def test_a_struct_schema_is_a_valid_object_schema_at_the_top() -> None:
    schema = struct_schema(SleepParameters)
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["required"] == ["seconds"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["seconds"] == {
        "description": "Total time to sleep.",
        "type": "number",
        "minimum": 0,
        "maximum": 3600,
    }
