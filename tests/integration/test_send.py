"""`telemetry send` run as a process against a real collector (uvicorn, free port) and aggregator.

The expected figures are folds written here over the events the test wrote into its files,
never the command's own counts: what the command says it got accepted must be what the
aggregator counted, event for event, and the refused events must be in `FILE.refused.jsonl`.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.cli.progress import applied_offsets, topic_end_offsets
from services.collector.app import create_app as create_collector
from services.contract.models import InstitutionKind
from services.storage.reference import read_reference_folder, replace_reference
from services.streams.kiosk.report import kiosks_report
from services.streams.uploads.report import uploads_report
from tests.fixtures.cli import run_telemetry
from tests.fixtures.events import REFERENCE
from tests.fixtures.server import ServerThread
from tests.fixtures.stack import (
    ADMIN_TOKEN,
    REPO,
    StackConfig,
    admin_headers,
    aggregator_running,
    stored_event_ids,
    wait_for,
)

pytestmark = pytest.mark.integration

APRIL = date(2020, 4, 1)
UPLOAD_FIELDS = ["event_id", "org_code", "table_code", "mode", "business_date", "uploaded_at", "record_count"]


@contextmanager
def collector_server(
    config: StackConfig, registry: CollectorRegistry, reference: Any = REFERENCE, **overrides: Any
) -> Iterator[str]:
    """The collector on a loopback port of its own, `reference` loaded (None: the database's); yields its URL."""
    app = create_collector(config.collector_settings(**overrides), registry)
    with ServerThread(app) as server:
        if reference is not None:
            with httpx.Client(base_url=server.base_url, headers=admin_headers(), timeout=30) as client:
                assert client.put("/v1/admin/reference", json=reference).status_code in (200, 201)
        yield server.base_url


async def _all_applied(config: StackConfig, db: asyncpg.Connection) -> bool:
    ends = await topic_end_offsets(config.kafka_bootstrap, config.events_topic, 6)
    done = await applied_offsets(db, config.events_topic, config.consumer_group)
    return all(done.get(partition, 0) >= end for partition, end in ends.items())


async def _send(url: str, *args: str, token: str = ADMIN_TOKEN) -> tuple[int, str]:
    code, output = await run_telemetry(
        "send",
        *args,
        env={"TELEMETRY_COLLECTOR_URL": url, "TELEMETRY_TOKEN": token},
        unset=["TELEMETRY_ADMIN_TOKEN"],
        timeout_s=120,
    )
    return code, " ".join(output.split())


def _upload(n: int, org: str, **fields: Any) -> dict[str, Any]:
    day = 1 + n % 30
    event = {
        "event_id": f"backfill-u-{n}",
        "org_code": org,
        "table_code": "OPV",
        "mode": "realtime" if n % 3 else "scheduled",
        "business_date": f"2020-04-{day:02d}",
        "uploaded_at": f"2020-04-{day:02d}T10:{n % 60:02d}:00+08:00",
        "record_count": n % 17,
    }
    event.update(fields)
    return event


def _write_csv(path: Path, events: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=UPLOAD_FIELDS)
        writer.writeheader()
        writer.writerows(events)


async def test_send_posts_two_streams_counts_what_it_says_and_writes_the_refused(
    stack_config: StackConfig, db: asyncpg.Connection, tmp_path: Path
) -> None:
    uploads = [_upload(n, ("D1", "D2", "H1")[n % 3]) for n in range(250)]
    # A contract problem (the collector's first check) and a reference one (its second).
    uploads[119]["record_count"] = -5
    uploads[179]["table_code"] = "NOPE"
    uploads_csv = tmp_path / "uploads.csv"
    _write_csv(uploads_csv, uploads)

    payments = [
        {
            "event_id": f"backfill-k-{n}",
            "org_code": "H1",
            "kiosk_id": ("K-H1-1", "K-H1-2")[n % 2],
            "kind": "payment" if n % 4 else "registration",
            "amount": f"{n}.{(n * 7) % 100:02d}",
            "occurred_at": f"2020-04-{1 + n % 30:02d}T09:00:00+08:00",
        }
        for n in range(150)
    ]
    payments[40]["kiosk_id"] = "K-XX"  # not registered: refused on the reference data
    lines = [orjson.dumps(p) for p in payments]
    lines[90] = lines[90].replace(f'"amount":"{payments[90]["amount"]}"'.encode(), b'"amount":12.5')
    lines.insert(60, b"{oops")  # line 61 of the file, refused before sending
    kiosk_jsonl = tmp_path / "kiosk.jsonl"
    kiosk_jsonl.write_bytes(b"\n".join(lines) + b"\n")

    good_uploads = [u for i, u in enumerate(uploads) if i not in (119, 179)]
    good_payments = [p for i, p in enumerate(payments) if i not in (40, 90)]

    async with aggregator_running(stack_config):
        with collector_server(stack_config, CollectorRegistry()) as url:
            code, output = await _send(url, str(uploads_csv), str(kiosk_jsonl), "--batch-size", "100")
            assert code == 1, output
            assert f"total: {len(good_uploads) + len(good_payments)} accepted, 5 refused, 0 not acknowledged" in output
            assert f"uploads.csv (upload → /v1/uploads): {len(good_uploads)} accepted, 2 refused" in output
            assert f"kiosk.jsonl (kiosk → /v1/kiosk-transactions): {len(good_payments)} accepted, 3 refused" in output
            await wait_for(lambda: _all_applied(stack_config, db), "every event applied", timeout_s=60)

            counted = sorted(await stored_event_ids(db))
            assert counted == sorted(e["event_id"] for e in good_uploads + good_payments)
            await _check_reports(db, good_uploads, good_payments)

            refused = _records(tmp_path / "uploads.csv.refused.jsonl")
            # CSV line = header + row index + 1.
            assert sorted((r["line"], r["status"], r["problems"][0]["field"]) for r in refused) == [
                (121, 422, "record_count"),
                (181, 422, "table_code"),
            ]
            assert {r["event"]["event_id"] for r in refused} == {"backfill-u-119", "backfill-u-179"}
            refused = _records(tmp_path / "kiosk.jsonl.refused.jsonl")
            assert sorted((r["line"], r["status"], r["problems"][0]["field"]) for r in refused) == [
                (41, 422, "kiosk_id"),
                (61, None, "(line)"),
                (92, 422, "amount"),
            ]

            # Sent again (with the progress bar): the same answers, nothing counted twice.
            code, output = await _send(url, str(uploads_csv), str(kiosk_jsonl), "--batch-size", "100", "--progress")
            assert code == 1, output
            assert f"total: {len(good_uploads) + len(good_payments)} accepted, 5 refused" in output
            await wait_for(lambda: _all_applied(stack_config, db), "the resend applied", timeout_s=60)
            assert sorted(await stored_event_ids(db)) == counted
            await _check_reports(db, good_uploads, good_payments)


def _events_in(paths: list[str]) -> int:
    """Lines of the files, less a CSV's header."""
    return sum(len(Path(p).read_text(encoding="utf-8").splitlines()) - p.endswith(".csv") for p in paths)


def _records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def _check_reports(db: asyncpg.Connection, uploads: list[dict[str, Any]], payments: list[dict[str, Any]]) -> None:
    records: Counter[str] = Counter()
    for event in uploads:
        records[event["org_code"]] += event["record_count"]
    rows = [
        *await uploads_report(db, APRIL, InstitutionKind.DISTRICT, None),
        *await uploads_report(db, APRIL, InstitutionKind.HOSPITAL, None),
    ]
    assert {r.org_code: r.records_uploaded for r in rows} == dict(records)
    paid = sum((Decimal(p["amount"]) for p in payments if p["kind"] == "payment"), Decimal(0))
    registered = sum((Decimal(p["amount"]) for p in payments if p["kind"] == "registration"), Decimal(0))
    total = next(r for r in await kiosks_report(db, APRIL, None) if r.group == "total")
    assert (total.payments, total.payment_amount) == (sum(p["kind"] == "payment" for p in payments), paid)
    assert (total.registrations, total.registration_amount) == (
        sum(p["kind"] == "registration" for p in payments),
        registered,
    )


async def test_send_retries_a_rate_limited_institution_with_the_same_ids_and_each_counts_once(
    stack_config: StackConfig, db: asyncpg.Connection, tmp_path: Path
) -> None:
    uploads = [_upload(n, "D1") for n in range(600)]
    path = tmp_path / "d1.csv"
    _write_csv(path, uploads)
    registry = CollectorRegistry()
    # 100 events a second and a burst of 100: 600 events in batches of 100, four at a time, meet 429s.
    limited = {"rate_limit_events_per_s": 100.0, "rate_limit_burst_events": 100.0}
    async with aggregator_running(stack_config):
        with collector_server(stack_config, registry, **limited) as url:
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(), timeout=30) as client:
                issued = await client.post("/v1/admin/tokens", json={"org_code": "D1"})
                assert issued.status_code == 201, issued.text
            token = issued.json()["token"]
            code, output = await _send(url, str(path), "--batch-size", "100", "--concurrency", "4", token=token)
            assert code == 0, output
            assert "total: 600 accepted, 0 refused, 0 not acknowledged" in output
            retries = re.search(r"total: .*\(([0-9]+) requests, ([0-9]+) retries", output)
            assert retries is not None and int(retries.group(2)) > 0, output
            rate_limited = registry.get_sample_value(
                "collector_events_rejected_total", {"event_type": "upload", "reason": "rate_limited"}
            )
            assert rate_limited is not None and rate_limited > 0
            assert not (tmp_path / "d1.csv.refused.jsonl").exists()
            await wait_for(lambda: _all_applied(stack_config, db), "every event applied", timeout_s=60)

    assert sorted(await stored_event_ids(db)) == sorted(u["event_id"] for u in uploads)
    rows = await uploads_report(db, APRIL, InstitutionKind.DISTRICT, None)
    assert {r.org_code: r.records_uploaded for r in rows}["D1"] == sum(u["record_count"] for u in uploads)


async def test_the_readmes_example_files_are_accepted_by_the_demo_reference_data(
    stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    await replace_reference(db, read_reference_folder(REPO / "services/demo/data/reference-2020-04"), source="test")
    examples = sorted(str(p) for p in (REPO / "docs/examples").glob("backfill-*"))
    with collector_server(stack_config, CollectorRegistry(), reference=None) as url:
        code, output = await _send(url, *examples)
    assert code == 0, output
    assert f"total: {_events_in(examples)} accepted, 0 refused, 0 not acknowledged" in output


async def test_send_retries_the_collectors_503_with_the_same_ids_and_each_counts_once(
    stack_config: StackConfig, db: asyncpg.Connection, tmp_path: Path
) -> None:
    uploads = [_upload(n, ("D1", "D2", "H1")[n % 3]) for n in range(300)]
    path = tmp_path / "busy.csv"
    _write_csv(path, uploads)
    registry = CollectorRegistry()
    # One request in progress at a time: eight senders at once meet "503 at its limit of 1 request in progress".
    async with aggregator_running(stack_config):
        with collector_server(stack_config, registry, max_concurrent_requests=1) as url:
            code, output = await _send(
                url, str(path), "--batch-size", "10", "--concurrency", "8", "--max-wait", "0.05", "--max-retries", "200"
            )
            assert code == 0, output
            assert "total: 300 accepted, 0 refused, 0 not acknowledged" in output
            busy = registry.get_sample_value(
                "collector_http_requests_total", {"route": "/v1/uploads", "method": "POST", "status": "503"}
            )
            assert busy is not None and busy > 0, output
            await wait_for(lambda: _all_applied(stack_config, db), "every event applied", timeout_s=60)

    assert sorted(await stored_event_ids(db)) == sorted(u["event_id"] for u in uploads)
    records: Counter[str] = Counter()
    for event in uploads:
        records[event["org_code"]] += event["record_count"]
    rows = await uploads_report(db, APRIL, InstitutionKind.DISTRICT, None)
    assert {r.org_code: r.records_uploaded for r in rows} == {org: records[org] for org in ("D1", "D2")}
