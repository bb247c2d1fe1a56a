"""A value read from the database and kept fresh: reloaded on NOTIFY and on a timer.

Used for the token and reference caches, so the hot path never waits on PostgreSQL and a
short database outage only delays changes instead of refusing requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import asyncpg

from services.storage.connection import Connection

log = logging.getLogger(__name__)

T = TypeVar("T")


class LiveValue(Generic[T]):
    """Holds `loader(conn)`'s latest result; reloads when `channel` is notified or every `refresh_s`."""

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        loader: Callable[[Connection], Awaitable[T]],
        channel: str,
        initial: T,
        refresh_s: float = 5.0,
    ) -> None:
        self.name = name
        self._pool = pool
        self._loader = loader
        self._channel = channel
        self._refresh_s = refresh_s
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.value: T = initial

    async def start(self) -> None:
        """Load once (best effort) and keep the value fresh in the background."""
        try:
            await self.reload()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("initial load failed; will retry", extra={"cache": self.name, "error": repr(exc)})
        self._task = asyncio.create_task(self._keep_fresh(), name=f"live-{self.name}")

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def reload(self) -> None:
        """Read the value now (after a change made in this process, before answering)."""
        async with self._pool.acquire() as conn:
            self.value = await self._loader(conn)

    def _on_notify(self, *_: Any) -> None:
        self._changed.set()

    async def _keep_fresh(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await conn.add_listener(self._channel, self._on_notify)
                    try:
                        while True:
                            self.value = await self._loader(conn)
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._changed.wait(), self._refresh_s)
                            self._changed.clear()
                    finally:
                        if not conn.is_closed():
                            await conn.remove_listener(self._channel, self._on_notify)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("refresh failed; serving the cached value", extra={"cache": self.name, "error": repr(exc)})
                await asyncio.sleep(self._refresh_s)
