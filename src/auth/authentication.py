"""Who is calling: a Bearer token (or, for browsers' WebSockets, `?token=`) becomes the
connection's Principal (CONTRACT.md §5). Health checks, the API document, metrics and the
dashboard's own files need none. A browser may open a WebSocket only from an allowed origin,
whether auth is on or off."""

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from jobcast.store.tokens import TokenStore, digest_of

# Probes, the API document, the dashboard page and its files, and Prometheus' scrapes.
OPEN_PATHS = ["^/health/", "^/schema", "^/$", "^/dashboard/", "^/metrics$"]
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenAuthentication(AbstractAuthenticationMiddleware):
    """Litestar middleware: the bearer token (and, for WebSockets, the Origin) of each request,
    turned into the Principal the handlers receive."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = presented_token(connection)
        if token is None:
            raise NotAuthorizedException(
                "a token is required: send `Authorization: Bearer <token>`", headers=CHALLENGE
            )
        tokens: TokenStore = connection.app.state.services.tokens
        digest = digest_of(token)
        principal = await tokens.verify_digest(digest)
        if principal is None:
            raise NotAuthorizedException("the token is not valid (unknown or revoked)", headers=CHALLENGE)
        return AuthenticationResult(user=principal, auth=digest)  # the hub re-checks it after an outage


def header(connection: ASGIConnection[Any, Any, Any, Any], name: bytes) -> str | None:
    """One request header, read from the raw scope: `connection.headers` would build and keep a
    parsed copy of them all, for as long as a WebSocket stays open."""
    found = next((value for key, value in connection.scope["headers"] if key.lower() == name), None)
    return None if found is None else found.decode("latin-1")


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, credentials = (header(connection, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if connection.scope["type"] == ScopeType.WEBSOCKET:  # a browser cannot set headers on a WebSocket
        return connection.query_params.get("token") or None
    return None


def token_authentication() -> DefineMiddleware:
    return DefineMiddleware(TokenAuthentication, exclude=OPEN_PATHS)


async def allowed_origin(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """Guard of the WebSocket routes: a cross-site page must not open a socket with the
    credentials of the user who visits it. No `Origin` header: a program, not a browser."""
    origin = header(connection, b"origin")
    if origin is None:
        return
    origin = origin.rstrip("/")
    host = header(connection, b"host") or ""
    scheme, _, netloc = origin.partition("://")
    if scheme in ("http", "https") and netloc == host:
        return
    if origin in connection.app.state.settings.origins():
        return
    raise PermissionDeniedException(f"origin {origin!r} is not allowed (JOBCAST_ALLOWED_ORIGINS)")
