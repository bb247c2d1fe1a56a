"""The whole April 2020 demo month through the real services as processes: it reproduces the bulletin.

This is what `deploy/local/demo` does, on a database and topics of the test's own and on
other ports, so it runs beside a running demo stack.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import date

import asyncpg
import httpx
import pytest

from services.contract.models import InstitutionKind
from services.demo.expected import (
    compare_kiosk_report,
    compare_upload_report,
    expected_kiosk_rows,
    expected_upload_rows,
)
from services.demo.month import DEFAULT_SEED, plan_month
from services.demo.replay import replay
from services.storage.reference import read_reference_folder, replace_reference
from services.streams.kiosk.report import kiosks_report
from services.streams.uploads.report import uploads_report
from tests.fixtures.stack import ADMIN_TOKEN, REPO, StackConfig, port_from_env, wait_for
from tests.fixtures.uploads_fold import measured_upload_figures, summarise

pytestmark = pytest.mark.integration

COLLECTOR_PORT = port_from_env("TELEMETRY_TEST_COLLECTOR_PORT")
AGGREGATOR_PORT = port_from_env("TELEMETRY_TEST_AGGREGATOR_PORT")


def _spawn(module: str, config: StackConfig, log_name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TELEMETRY_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        "TELEMETRY_DATABASE_URL": config.database_url,
        "TELEMETRY_ADMIN_TOKEN": ADMIN_TOKEN,
        "TELEMETRY_EVENTS_TOPIC": config.events_topic,
        "TELEMETRY_DEAD_LETTER_TOPIC": config.dead_letter_topic,
        "TELEMETRY_CONSUMER_GROUP": config.consumer_group,
        "TELEMETRY_COLLECTOR_PORT": str(COLLECTOR_PORT),
        "TELEMETRY_AGGREGATOR_PORT": str(AGGREGATOR_PORT),
        # Its own spool: the default is the demo stack's, whose running collector holds it.
        "TELEMETRY_SPOOL_DIR": str(config.spool_dir),
        "TELEMETRY_LOG_LEVEL": "WARNING",
    }
    log_dir = REPO / ".state" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / log_name).open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def services(stack_config: StackConfig) -> Iterator[StackConfig]:
    """Collector and aggregator as separate processes, as the local stack runs them."""
    procs = [
        _spawn("services.collector", stack_config, "demo-collector.log"),
        _spawn("services.aggregator", stack_config, "demo-aggregator.log"),
    ]
    try:
        yield stack_config
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
async def demo_db(services: StackConfig) -> AsyncIterator[asyncpg.Connection]:
    """The reference data loaded, both services ready."""
    conn = await asyncpg.connect(services.database_url)
    try:
        await wait_for(lambda: _ready(AGGREGATOR_PORT), "aggregator ready", timeout_s=60)
        await replace_reference(
            conn, read_reference_folder(REPO / "services/demo/data/reference-2020-04"), source="test"
        )
        await wait_for(lambda: _ready(COLLECTOR_PORT), "collector ready", timeout_s=60)
        yield conn
    finally:
        await conn.close()


async def test_demo_month_reproduces_the_bulletin(demo_db: asyncpg.Connection) -> None:
    plan = plan_month(DEFAULT_SEED)
    result = await replay(
        plan.events(), f"http://127.0.0.1:{COLLECTOR_PORT}", ADMIN_TOKEN, total=plan.total_events, progress=False
    )
    assert result.events_posted == plan.total_events
    distinct = plan.total_events - plan.duplicate_events

    async def all_applied() -> bool:
        return int(await demo_db.fetchval("SELECT count(*) FROM event_keys")) >= distinct

    await wait_for(all_applied, f"{distinct} distinct events applied", timeout_s=240)
    await asyncio.sleep(0.5)
    assert await demo_db.fetchval("SELECT count(*) FROM event_keys") == distinct

    april = date(2020, 4, 1)
    districts = await uploads_report(demo_db, april, InstitutionKind.DISTRICT, None)
    hospitals = await uploads_report(demo_db, april, InstitutionKind.HOSPITAL, None)
    kiosks = await kiosks_report(demo_db, april, None)
    # Printed cells from the bulletin; what it does not print (conformance, ...) from this
    # test's own fold of the stream it posted, never from the generator or the report code.
    measured = measured_upload_figures(summarise(plan.events()))
    for rows in (districts, hospitals):
        expected = expected_upload_rows(rows[0].kind.value, reference=plan.reference, measured=measured)
        assert all("conformance_rate" in r.checked for r in expected if r.in_bulletin)
        assert compare_upload_report(expected, [r.model_dump(mode="json") for r in rows]) == []
    assert compare_kiosk_report(expected_kiosk_rows(plan.reference), [r.model_dump(mode="json") for r in kiosks]) == []
    assert str(kiosks[-1].payment_amount) == "185976917.64"
