"""Connection pool creation and start-up migration."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.storage.migrate import migrate

log = logging.getLogger(__name__)


async def open_pool(
    dsn: str, *, max_size: int = 10, wait_s: float = 30.0, server_settings: dict[str, str] | None = None
) -> asyncpg.Pool:
    """A pool on a migrated database; waits up to `wait_s` for PostgreSQL to come up."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=max_size, command_timeout=60, server_settings=server_settings
            )
            break
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("database not reachable yet; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1.0)
    async with pool.acquire() as conn:
        applied = await migrate(conn)
    if applied:
        log.info("database migrated", extra={"applied": applied})
    return pool
