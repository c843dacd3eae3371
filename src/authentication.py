"""Who is calling: a Bearer token (or, for browsers' WebSockets, `?token=`) becomes the
connection's Principal (CONTRACT.md §5). Health checks, the API document, metrics and the
dashboard's own files need none."""

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from src.tokens import TokenStore

OPEN_PATHS = ["^/health/", "^/schema"]
OPEN_PATHS += ["^/$", "^/dashboard/", "^/metrics$"]  # the page, its assets, Prometheus' scrapes
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenAuthentication(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = presented_token(connection)
        if token is None:
            raise NotAuthorizedException(
                "a token is required: send `Authorization: Bearer <token>`", headers=CHALLENGE
            )
        tokens: TokenStore = connection.app.state.services.tokens
        principal = await tokens.verify(token)
        if principal is None:
            raise NotAuthorizedException("the token is not valid (unknown or revoked)", headers=CHALLENGE)
        return AuthenticationResult(user=principal, auth=None)


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if connection.scope["type"] == ScopeType.WEBSOCKET:  # a browser cannot set headers on a WebSocket
        return connection.query_params.get("token") or None
    return None


def token_authentication() -> DefineMiddleware:
    return DefineMiddleware(TokenAuthentication, exclude=OPEN_PATHS)
