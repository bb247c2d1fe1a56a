"""Page sessions: a random id in an HttpOnly cookie, the session itself in `page_sessions`.

The token typed into the sign-in form is checked once (`Authenticator.authenticate_token`) and
never kept: the cookie holds a random session id, the table its SHA-256 and what proves the
session still stands for a live credential, checked on every request:

- an institution's session keeps its token's digest; once the token is revoked (the token cache
  hears of it by NOTIFY) the session no longer opens;
- the admin's keeps an HMAC of the session id keyed with the admin token, so a new admin token
  ends every admin session.

Every POST of a session carries its `csrf_token` in the form, on top of `SameSite=Strict`; the
sign-in form, before any session exists, carries the value of a short-lived cookie of its own
(a double-submit token), so no other site can sign a browser in under a token of its choosing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.storage.connection import Connection
from services.storage.live import LiveValue
from services.storage.tokens import token_digest
from services.web.auth import ADMIN, Principal

SESSION_COOKIE = "telemetry_session"
SIGNIN_COOKIE = "telemetry_signin"
SIGNIN_COOKIE_MAX_AGE_S = 3600
"""How long a sign-in form may stay open before its form token is refused."""
_ID_CHARS = 64
"""Longest cookie value looked up: ids are 43 characters; anything longer is not ours."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who it is, the form token of its POSTs, until when."""

    principal: Principal
    csrf_token: str
    expires_at: datetime


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


def new_form_token() -> str:
    """A random form token (sign-in's double-submit value, a session's CSRF token)."""
    return secrets.token_urlsafe(32)


def same_token(sent: str | None, expected: str | None) -> bool:
    """Whether a form's token matches the expected one (constant time; absent never matches)."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


class Sessions:
    """Opens, finds and closes page sessions; one per aggregator, built in its lifespan."""

    def __init__(self, admin_token: str, tokens: LiveValue[dict[bytes, str]], lifetime: timedelta) -> None:
        self._admin_key = admin_token.encode("utf-8")
        self._tokens = tokens
        self.lifetime = lifetime

    def _admin_mark(self, session_id: str) -> bytes:
        return hmac.new(self._admin_key, session_id.encode("utf-8"), hashlib.sha256).digest()

    async def open(self, conn: Connection, principal: Principal, token: str, now: datetime) -> tuple[str, Session]:
        """A new session for `principal`, who signed in with `token`; returns the cookie value with it."""
        session_id = secrets.token_urlsafe(32)
        credential = self._admin_mark(session_id) if principal.is_admin else token_digest(token)
        session = Session(principal, new_form_token(), now + self.lifetime)
        async with conn.transaction():
            # Expired sessions go here rather than on a timer: a sign-in is rare and cheap.
            await conn.execute("DELETE FROM page_sessions WHERE expires_at <= $1", now)
            await conn.execute(
                """INSERT INTO page_sessions (session_hash, org_code, credential, csrf_token, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                _digest(session_id),
                principal.org_code,
                credential,
                session.csrf_token,
                now,
                session.expires_at,
            )
        return session_id, session

    async def find(self, conn: Connection, session_id: str | None, now: datetime) -> Session | None:
        """The live session of a cookie value, or None (none sent, unknown, expired, credential gone)."""
        if not session_id or len(session_id) > _ID_CHARS:
            return None
        row = await conn.fetchrow(
            "SELECT org_code, credential, csrf_token, expires_at FROM page_sessions "
            "WHERE session_hash = $1 AND expires_at > $2",
            _digest(session_id),
            now,
        )
        if row is None:
            return None
        org_code: str | None = row["org_code"]
        credential = bytes(row["credential"])
        if org_code is None:
            if not hmac.compare_digest(credential, self._admin_mark(session_id)):
                return None
            principal = ADMIN
        else:
            if self._tokens.value.get(credential) != org_code:
                return None
            principal = Principal(org_code)
        return Session(principal, row["csrf_token"], row["expires_at"])

    async def close(self, conn: Connection, session_id: str) -> None:
        """End a session (sign-out): its cookie opens nothing from now on."""
        await conn.execute("DELETE FROM page_sessions WHERE session_hash = $1", _digest(session_id))
