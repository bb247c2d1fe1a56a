"""Institution tokens: issue, revoke, list; only SHA-256 digests are stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from services.storage.connection import Connection
from services.storage.errors import ReferenceDataError, TokenNotFoundError

TOKEN_CHANNEL = "telemetry_tokens"  # noqa: S105 - a NOTIFY channel name
TOKEN_PREFIX = "hut_"  # noqa: S105 - marks our tokens in secret scanners


def token_digest(token: str) -> bytes:
    """The digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token; `token` is shown once and never stored."""

    token_id: str
    org_code: str
    token: str


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    token_id: str
    org_code: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


async def _audit(conn: Connection, actor: str, action: str, subject: str) -> None:
    await conn.execute("INSERT INTO admin_audit (actor, action, subject) VALUES ($1, $2, $3)", actor, action, subject)


async def issue_token(conn: Connection, org_code: str, label: str, actor: str) -> IssuedToken:
    """Issue a token bound to one known institution."""
    known = await conn.fetchval("SELECT 1 FROM cur_institutions WHERE org_code = $1", org_code)
    if not known:
        raise ReferenceDataError([f"unknown institution {org_code}"])
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO api_tokens (token_id, org_code, token_hash, label) VALUES ($1, $2, $3, $4)",
            token_id,
            org_code,
            token_digest(token),
            label,
        )
        await _audit(conn, actor, "token.issue", f"{token_id} for {org_code}")
        await conn.execute("SELECT pg_notify($1, $2)", TOKEN_CHANNEL, token_id)
    return IssuedToken(token_id, org_code, token)


async def revoke_token(conn: Connection, token_id: str, actor: str) -> None:
    """Revoke a token; it is refused from the next request on."""
    async with conn.transaction():
        found = await conn.fetchval(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = $1 RETURNING 1",
            token_id,
        )
        if not found:
            raise TokenNotFoundError(token_id)
        await _audit(conn, actor, "token.revoke", token_id)
        await conn.execute("SELECT pg_notify($1, $2)", TOKEN_CHANNEL, token_id)


async def list_tokens(conn: Connection) -> list[TokenInfo]:
    """Every token, newest first."""
    rows = await conn.fetch(
        "SELECT token_id, org_code, label, created_at, revoked_at FROM api_tokens ORDER BY created_at DESC"
    )
    return [TokenInfo(**dict(r)) for r in rows]


async def active_token_digests(conn: Connection) -> dict[bytes, str]:
    """Digest → org_code of every token not revoked."""
    rows = await conn.fetch("SELECT token_hash, org_code FROM api_tokens WHERE revoked_at IS NULL")
    return {bytes(r["token_hash"]): r["org_code"] for r in rows}
