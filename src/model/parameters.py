"""A type's parameters_schema (JSON Schema, draft 2020-12): checking the schema, validating
parameters against it, and deriving it from a handler's msgspec Struct."""

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import msgspec
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError

from jobcast.errors import InvalidParameters, InvalidSchema

DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF_KEYWORDS = ("$ref", "$dynamicRef")
MESSAGE_MAX_CHARS = 300


def check_schema(schema: dict[str, Any]) -> None:
    """Raise InvalidSchema unless `schema` is a valid draft 2020-12 schema with only local refs."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        failure = {"path": "/parameters_schema" + pointer(error.absolute_path), "message": error.message}
        raise InvalidSchema("parameters_schema is not a valid JSON Schema", [failure]) from None
    for path, ref in _refs(schema, "/parameters_schema"):
        if not ref.startswith("#"):
            failure = {"path": path, "message": f"only local references (#...) are allowed, not {ref!r}"}
            raise InvalidSchema("parameters_schema refers to an outside document", [failure])


def validate_parameters(schema: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Raise InvalidParameters listing every failure, each with a JSON pointer from the body."""
    validator = _validator(msgspec.json.encode(schema))
    failures = [
        failure
        for error in sorted(validator.iter_errors(parameters), key=lambda e: list(map(str, e.absolute_path)))
        for failure in _failures(error)
    ]
    if failures:
        raise InvalidParameters("parameters do not match the task type's parameters_schema", failures)


def struct_schema(struct_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON Schema of a Struct, with the Struct itself at the top rather than behind a $ref."""
    (ref,), components = msgspec.json.schema_components([struct_type], ref_template="#/$defs/{name}")
    name = ref["$ref"].removeprefix("#/$defs/")
    schema: dict[str, Any] = {"$schema": DIALECT, **components.pop(name)}
    if components:
        schema["$defs"] = components
    return schema


def pointer(path: Any) -> str:
    """A JSON pointer (RFC 6901) for a sequence of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Draft202012Validator:
    schema = msgspec.json.decode(schema_json)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _failures(error: ValidationError) -> Iterator[dict[str, str]]:
    path = "/parameters" + pointer(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        for name in error.validator_value:  # type: ignore[union-attr]
            if name not in instance:
                yield {"path": f"{path}/{pointer([name])[1:]}", "message": "this field is required"}
        return
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        for name in instance:
            if name not in known and not any(re.search(p, name) for p in patterns):
                yield {"path": path + pointer([name]), "message": "this field is not allowed"}
        return
    yield {"path": path, "message": _shorten(error.message)}


def _shorten(message: str) -> str:
    """jsonschema quotes the failing value; a huge value must not make a huge answer."""
    if len(message) <= MESSAGE_MAX_CHARS:
        return message
    return message[: MESSAGE_MAX_CHARS - 3] + "..."


def _refs(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in REF_KEYWORDS and isinstance(value, str):
                yield f"{path}/{key}", value
            else:
                yield from _refs(value, path + pointer([key]))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{path}/{index}")
