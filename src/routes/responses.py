"""The error answers each route may give, for the OpenAPI document: one shape, one sentence each."""

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer: a status code, a sentence for the caller, and details when useful."""

    status_code: int
    detail: str
    extra: Any = None


MEANINGS = {
    400: "The request does not fit the endpoint: unknown field, wrong type, value out of range.",
    401: "No valid token (when auth is on): send `Authorization: Bearer <token>`.",
    403: "The caller may see this but not do it.",
    404: "Not found, or not visible to the caller.",
    405: "The path does not take this method.",
    409: "Not possible in the current state, or the name already exists.",
    413: "The body is larger than JOBCAST_MAX_BODY_BYTES.",
    422: "Values fail the task type's parameters_schema, or are too large or too deep; "
    "`extra` lists each failure with its JSON pointer.",
    429: "Over the caller's submission rate; retry after `Retry-After` seconds.",
    503: "The task store is unavailable; retry after `Retry-After` seconds.",
}
BEARER = "bearer"  # the security scheme of every /api route and WebSocket
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
# Any /api route: without a token, and while Redis is unreachable.
ALWAYS = (401, 503)


def errors(*status_codes: int) -> dict[int, ResponseSpec]:
    """The documented error answers of an /api route: these plus 401 and 503."""
    return {
        code: ResponseSpec(ErrorBody, description=MEANINGS[code], generate_examples=False)
        for code in sorted({*status_codes, *ALWAYS})
    }
