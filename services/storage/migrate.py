"""Apply the versioned SQL migrations in `migrations/`, once each, under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

from services.storage.connection import Connection
from services.storage.errors import MigrationError

log = logging.getLogger(__name__)

# Both services migrate at start; the lock makes the second one wait, then find nothing to do.
_LOCK_KEY = 0x7E1E_0001


@dataclass(frozen=True)
class Migration:
    """One migration file: `NNNN_name.sql`."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, to refuse a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found = []
    for entry in resources.files("services.storage.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    # Numbers are handed out to branches built side by side (a reserved number may land after a
    # higher one), so a gap is allowed; two files claiming one number are not.
    if len(set(versions)) != len(versions) or not all(v >= 1 for v in versions):
        raise MigrationError(f"migration versions must be distinct positive numbers, found {versions}")
    return found


async def migrate(conn: Connection) -> list[int]:
    """Apply the pending migrations; return the versions applied now."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done = {r["version"]: r["checksum"] for r in rows}
        for migration in load_migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} ({migration.name}) was changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("migration applied", extra={"version": migration.version, "migration": migration.name})
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
