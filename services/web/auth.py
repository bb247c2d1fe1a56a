"""Bearer authentication: the admin token from the environment, institution tokens from the database.

Institution tokens are cached as digest → org_code in a LiveValue, so ingest keeps
authenticating while PostgreSQL is briefly away and a revocation applies within milliseconds.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.storage.live import LiveValue
from services.storage.tokens import TOKEN_CHANNEL, active_token_digests, token_digest
from services.web.errors import ForbiddenError, UnauthenticatedError


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin, or an institution bound to one org_code."""

    org_code: str | None

    @property
    def is_admin(self) -> bool:
        """Admins may act for every institution and manage reference data."""
        return self.org_code is None

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never the token)."""
        return "admin" if self.is_admin else f"org:{self.org_code}"

    def may_act_for(self, org_code: str) -> bool:
        """Whether this caller may submit or read rows of `org_code`."""
        return self.is_admin or self.org_code == org_code


ADMIN = Principal(None)


class Authenticator:
    """Resolves bearer tokens: the admin token in constant time, institution tokens by digest."""

    def __init__(self, admin_token: str, tokens: LiveValue[dict[bytes, str]]) -> None:
        self._admin_token = admin_token.encode("utf-8")
        self.tokens = tokens

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization` header, or UnauthenticatedError."""
        if not authorization:
            raise UnauthenticatedError("missing Authorization: Bearer <token> header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthenticatedError("Authorization header must be 'Bearer <token>'")
        return self.authenticate_token(token)

    def authenticate_token(self, token: str) -> Principal:
        """The principal of a bare token (a bearer header's, or one typed into the sign-in form)."""
        if hmac.compare_digest(token.encode("utf-8"), self._admin_token):
            return ADMIN
        org_code = self.tokens.value.get(token_digest(token))
        if org_code is None:
            raise UnauthenticatedError("unknown or revoked token")
        return Principal(org_code)


def token_cache(pool: asyncpg.Pool, refresh_s: float = 5.0) -> LiveValue[dict[bytes, str]]:
    """The active institution tokens, kept fresh."""
    return LiveValue("tokens", pool, active_token_digests, TOKEN_CHANNEL, {}, refresh_s)


# async: a plain `def` dependency runs in FastAPI's thread pool on every request.
async def _principal(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.authenticate(request.headers.get("authorization"))


async def _admin(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("this needs the admin token")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
AdminPrincipal = Annotated[Principal, Depends(_admin)]
