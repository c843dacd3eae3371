"""How large, as JSON, and how deeply nested a value a task stores may be: parameters, metadata,
a result. A payload past them is one every reader would have to carry."""

from typing import Any

import msgspec

from jobcast.errors import InvalidParameters
from jobcast.model.parameters import pointer


class Bounds(msgspec.Struct, frozen=True):
    """How large, as JSON, and how deeply nested a value a task stores may be."""

    max_bytes: int
    max_depth: int


def check_bounds(bounds: Bounds, values: dict[str, Any]) -> None:
    """Raise InvalidParameters for each value (keyed by its JSON pointer in the body) that is
    too large or nested too deeply: a payload every reader would have to carry."""
    failures = []
    for path, value in values.items():
        size = len(msgspec.json.encode(value))
        if size > bounds.max_bytes:
            message = f"{size} bytes of JSON; at most {bounds.max_bytes} are allowed"
            failures.append({"path": path, "message": message})
        too_deep = _first_deeper_than(value, bounds.max_depth)
        if too_deep is not None:
            message = f"nested deeper than {bounds.max_depth} levels"
            failures.append({"path": path + pointer(too_deep), "message": message})
    if failures:
        raise InvalidParameters("a value is too large or nested too deeply", failures)


def _first_deeper_than(value: Any, max_depth: int) -> list[Any] | None:
    """The path to the first object or array at depth `max_depth` + 1 (the value itself is 1)."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if len(path) >= max_depth:
            return path
        children = list(node.items() if isinstance(node, dict) else enumerate(node))
        stack.extend((child, [*path, key]) for key, child in reversed(children))
    return None
