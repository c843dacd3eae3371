"""Unknown query parameters are refused with 400, as unknown body fields are: a misspelt filter
must not silently answer with everything. So is a parameter given twice: none takes a list.
Each operation's parameters are read from the app's own OpenAPI document, so the rule cannot
drift from the routes."""

from typing import Any

from litestar import Litestar, Request

from jobcast.errors import BadRequest

QueryNames = dict[tuple[str, str], frozenset[str]]  # (method, path template) → query parameter names


def query_names(app: Litestar) -> QueryNames:
    """The query parameters of every operation in the app's OpenAPI document."""
    names: QueryNames = {}
    for path, item in (app.openapi_schema.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method)
            if operation is not None:
                declared = [p for p in operation.parameters or [] if getattr(p, "param_in", None) == "query"]
                names[(method.upper(), path)] = frozenset(p.name for p in declared)
    return names


async def refuse_unknown_query(request: Request[Any, Any, Any]) -> None:
    """before_request hook (async: a sync one would run in a thread for every request): 400
    naming the parameters the operation does not take."""
    known: QueryNames = request.app.state.query_names
    allowed = known.get((request.method, request.scope.get("path_template", "")))
    if allowed is None:
        return  # not an operation of the document: the schema pages
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes none"
        raise BadRequest(f"unknown query parameter {', '.join(map(repr, unknown))}: {takes}")
    repeated = sorted(
        name for name in set(request.query_params) if len(request.query_params.getall(name)) > 1
    )
    if repeated:
        raise BadRequest(f"query parameter {', '.join(map(repr, repeated))} is given more than once")
