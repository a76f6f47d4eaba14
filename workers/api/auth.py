"""API authentication: a bearer token for programs, a session cookie for the dashboard.

The dashboard sends the token once to POST /auth/login and gets back an HttpOnly,
SameSite=Strict cookie: page scripts cannot read it (an XSS cannot steal it), other sites
cannot make the browser send it, and the browser's own EventSource sends it with the
stream. The cookie holds an HMAC of the token, not the token, so changing the token ends
every session. (No `from __future__ import annotations`: FastAPI must see the closure's
`Depends(bearer)` as an object, not as a string it cannot resolve.)
"""

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr

COOKIE = "maskwatch_session"
SESSION_MAX_AGE_S = 12 * 3600


class Login(BaseModel):
    """The body of POST /auth/login."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(description="The API's bearer token.")


def session_value(token: str) -> str:
    """The cookie value of a session opened with `token` (an HMAC, never the token)."""
    return hmac.new(token.encode(), b"maskwatch-dashboard-session", hashlib.sha256).hexdigest()


def _matches(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def authorizer(token: str | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: pass with the bearer token or the session cookie (or always,
    when the API has no token)."""
    bearer = HTTPBearer(auto_error=False, description="Required when the API has a token.")

    async def authorize(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            return
        if credentials and _matches(credentials.credentials, token):
            return
        if _matches(request.cookies.get(COOKIE, ""), session_value(token)):
            return
        raise HTTPException(
            401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )

    return authorize


def login_router(token: str | None) -> APIRouter:
    """POST /auth/login (token in, cookie out) and POST /auth/logout."""
    router = APIRouter(prefix="/auth", tags=["auth"])

    @router.post(
        "/login",
        status_code=204,
        summary="Open a dashboard session (sets a cookie)",
        responses={401: {"description": "Wrong token"}},
    )
    async def login(body: Login, request: Request, response: Response) -> None:
        if token is not None and not _matches(body.token.get_secret_value(), token):
            raise HTTPException(401, "wrong token")
        response.set_cookie(
            COOKIE,
            session_value(token or ""),
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    @router.post("/logout", status_code=204, summary="End the dashboard session")
    async def logout(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

    return router
