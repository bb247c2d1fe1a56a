"""The hotline stream on the real broker and database: 422s, dead letters, a plain count of what was
posted against the report (JSON, CSV, each token's view), the bulletin, and the demo month against
the printed bulletin.

Expected figures come from loops written here over the events posted, or from the printed
bulletin (services/demo/data/bulletin-2020-04/, through services/demo/expected.py's checker),
never from the report code.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import sys
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.aggregator.deadletters import read_dead_letters
from services.aggregator.store import Batch, apply_batch, check_time_zone
from services.bulletin.render import render_html
from services.demo.expected import compare_hotline_report, expected_hotline
from services.demo.stream import plan_demo_month
from services.quality.month import load_quality_month
from services.storage.reference import read_reference_folder, replace_reference
from services.streams import STREAMS, ConsumedEvent
from services.streams.hotline.model import HotlineRow
from services.streams.hotline.report import hotline_report_of
from tests.fixtures.hotline import CALL_CATEGORIES, WORK_ORDER_CATEGORIES, contact, hotline_reference
from tests.fixtures.stack import REPO, StackConfig, admin_headers, count_events, wait_for
from tests.unit.bulletin.page import parse, problems, table_rows

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = {"month": "2020-04"}
PATH = "/v1/hotline-contacts"
FIGURES = list(HotlineRow.model_fields)[3:]
"""Every figure of a row (after org_code, name, city)."""


async def _load(collector: httpx.AsyncClient) -> None:
    response = await collector.put("/v1/admin/reference", json=hotline_reference(), headers=admin_headers())
    assert response.status_code in (200, 201), response.text


async def _post(collector: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        response = await collector.post(PATH, json={"events": events[start : start + 1000]}, headers=admin_headers())
        assert response.status_code == 202, response.text


async def _applied(db: asyncpg.Connection, distinct: int) -> None:
    async def done() -> bool:
        return await count_events(db) >= distinct

    await wait_for(done, f"{distinct} contacts applied")
    await asyncio.sleep(0.3)  # anything counted twice would show now
    assert await count_events(db) == distinct


async def _token(collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, org_code: str) -> dict[str, str]:
    issued = await collector.post("/v1/admin/tokens", json={"org_code": org_code}, headers=admin_headers())
    assert issued.status_code == 201, issued.text
    headers = {"Authorization": f"Bearer {issued.json()['token']}"}

    async def known() -> bool:
        return (await aggregator.get("/v1/reports/hotline", params=APRIL, headers=headers)).status_code == 200

    await wait_for(known, f"the aggregator knows {org_code}'s token")
    return headers


# --- refusals ------------------------------------------------------------------------------


async def test_contacts_of_institutions_that_are_not_centres_or_of_the_wrong_category_are_422_and_nothing_is_kept(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load(collector)
    events = [
        contact(),
        contact(org_code="H1"),  # a hospital
        contact(),
        contact(org_code="D1"),  # a district
        contact(org_code="O1"),  # an institution of kind other
        contact(org_code="NOPE"),  # unknown
    ]
    response = await collector.post(PATH, json={"events": events}, headers=admin_headers())
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "org_code"),
        (3, "org_code"),
        (4, "org_code"),
        (5, "org_code"),
    ]
    assert all("not a 12320 hotline centre" in e["reason"] for e in errors[:3])
    assert "unknown institution" in errors[3]["reason"]

    mixed = [contact(), contact(kind="work_order", category="complaint"), contact(kind="call", category="city_12345")]
    response = await collector.post(PATH, json={"events": mixed}, headers=admin_headers())
    assert response.status_code == 422, response.text
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "category"), (2, "category")]

    # Nothing of either batch was kept: a marker is the only contact counted.
    assert (await collector.post(PATH, json=contact(event_id="marker"), headers=admin_headers())).status_code == 202
    await _applied(db, 1)
    assert await db.fetchval("SELECT array_agg(event_id) FROM hotline_contacts") == ["marker"]


async def test_a_contact_of_the_wrong_category_that_got_past_the_collector_is_dead_lettered(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load(collector)
    good = [contact(event_id="good-1"), contact(event_id="good-2", kind="work_order", category="city_12345")]
    bad = contact(event_id="bad", kind="work_order", category="appointment")
    record = {
        "v": 1,
        "type": "hotline_contact",
        "received_at": "2020-04-10T02:00:00+00:00",
        "events": [good[0], bad, good[1]],
    }
    producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(stack_config.events_topic, orjson.dumps(record), key=b"L1")
    finally:
        await producer.stop()
    await _applied(db, 2)

    async def dead_lettered() -> bool:
        return len(await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)) == 1

    await wait_for(dead_lettered, "the bad contact dead-lettered")
    [letter] = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
    assert (letter.reason, letter.event_type, letter.event["event_id"]) == ("invalid_event", "hotline_contact", "bad")
    assert "category" in letter.detail
    report = (await aggregator.get("/v1/reports/hotline", params=APRIL, headers=admin_headers())).json()
    l1 = next(r for r in report["rows"] if r["org_code"] == "L1")
    assert (l1["calls"], l1["consultation"], l1["work_orders_city_12345"], l1["appointment"]) == (1, 1, 1, 0)


# --- the figures ---------------------------------------------------------------------------


def _stream(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Contacts of L1 and L2 from 28 March to 3 May, near midnight too, in three offsets; the
    month's edges; then resends of some of them (identical, later), all shuffled."""
    rng = random.Random(seed)
    zones = [SHANGHAI, ZoneInfo("UTC"), ZoneInfo("America/New_York")]
    start = datetime(2020, 3, 28, tzinfo=SHANGHAI)
    events = []
    for n in range(1200):
        moment = start + timedelta(seconds=rng.randrange(0, 36 * 86400))
        if n % 8 == 0:  # within seconds of local midnight
            moment = moment.replace(hour=23, minute=59, second=59) + timedelta(seconds=rng.choice([0, 1]))
        kind = rng.choice(["call", "call", "call", "work_order"])
        category = rng.choice(CALL_CATEGORIES if kind == "call" else WORK_ORDER_CATEGORIES)
        events.append(
            contact(
                event_id=f"s{n}",
                org_code=rng.choice(["L1", "L1", "L2"]),
                kind=kind,
                category=category,
                occurred_at=moment.astimezone(rng.choice(zones)).isoformat(),
            )
        )
    # One second either side of the month, in +08:00 and in Z / -04:00.
    for n, when in enumerate(
        [
            "2020-03-31T23:59:59+08:00",
            "2020-03-31T15:59:59Z",
            "2020-04-01T00:00:00+08:00",
            "2020-03-31T12:00:00-04:00",
            "2020-04-30T23:59:59+08:00",
            "2020-04-30T11:59:59-04:00",
            "2020-05-01T00:00:00+08:00",
            "2020-04-30T16:00:00Z",
        ]
    ):
        events.append(contact(event_id=f"edge-{n}", org_code="L2", category="crisis_intervention", occurred_at=when))
    resent = [dict(e) for e in rng.sample(events, 150)]
    both = events + resent
    rng.shuffle(both)
    return events, both


def _plain_count(events: list[dict[str, Any]], month: tuple[int, int]) -> dict[str, Counter[str]]:
    """The contract's figures, counted here: each distinct contact whose Shanghai day is in `month`."""
    out: dict[str, Counter[str]] = {}
    seen = set()
    for event in events:
        key = (event["org_code"], event["event_id"])
        if key in seen:
            continue
        seen.add(key)
        local = datetime.fromisoformat(event["occurred_at"]).astimezone(SHANGHAI)
        if (local.year, local.month) != month:
            continue
        figures = out.setdefault(event["org_code"], Counter())
        if event["kind"] == "call":
            figures["calls"] += 1
            figures[event["category"]] += 1
        else:
            figures[f"work_orders_{event['category']}"] += 1
    return out


async def test_the_report_is_a_plain_count_of_the_distinct_contacts_of_the_month(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    await _load(collector)
    events, posted = _stream(20200401)
    await _post(collector, posted)
    await _applied(db, len(events))

    counted = _plain_count(events, (2020, 4))
    assert counted["L2"]["crisis_intervention"] >= 4  # the edges inside April are there
    places = {"L1": ("南京12320", "南京市"), "L2": ("苏州12320", "苏州市"), "L3": ("无锡12320", None)}
    want_rows = [
        {"org_code": org, "name": name, "city": city, **{f: counted.get(org, Counter())[f] for f in FIGURES}}
        for org, (name, city) in places.items()
    ]
    want_rows.sort(key=lambda r: (-r["calls"], r["org_code"]))
    want_total = {"org_code": None, "name": "合计", "city": None, **{f: sum(r[f] for r in want_rows) for f in FIGURES}}

    report = (await aggregator.get("/v1/reports/hotline", params=APRIL, headers=admin_headers())).json()
    assert report == {"rows": want_rows, "total": want_total}

    response = await aggregator.get("/v1/reports/hotline", params={**APRIL, "format": "csv"}, headers=admin_headers())
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text)))
    assert lines[0] == ["org_code", "name", "city", *FIGURES]
    as_text = [["" if r[c] is None else str(r[c]) for c in lines[0]] for r in [*want_rows, want_total]]
    assert lines[1:] == as_text

    # The command prints the same report.
    env = {**os.environ, "TELEMETRY_DATABASE_URL": database_url, "TELEMETRY_TIMEZONE": "Asia/Shanghai"}
    command = "from services.cli.main import main; main()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", command, "report", "hotline", "--month", "2020-04", "--format", "json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, errors = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, errors.decode()
    assert orjson.loads(output) == report

    # Each token sees its own rows and a total of them: a centre its row, a hospital nothing.
    l2 = await _token(collector, aggregator, "L2")
    own = (await aggregator.get("/v1/reports/hotline", params=APRIL, headers=l2)).json()
    [l2_row] = [r for r in want_rows if r["org_code"] == "L2"]
    assert own == {"rows": [l2_row], "total": {**l2_row, "org_code": None, "name": "合计", "city": None}}
    h1 = await _token(collector, aggregator, "H1")
    none = (await aggregator.get("/v1/reports/hotline", params=APRIL, headers=h1)).json()
    assert none == {"rows": [], "total": {**want_total, **dict.fromkeys(FIGURES, 0)}}

    # March holds what fell before the month's first second.
    march = (await aggregator.get("/v1/reports/hotline", params={"month": "2020-03"}, headers=admin_headers())).json()
    assert {r["org_code"]: r["calls"] for r in march["rows"]} == {
        org: _plain_count(events, (2020, 3)).get(org, Counter())["calls"] for org in places
    }


async def test_bad_report_parameters_are_422_and_a_token_is_needed(aggregator: httpx.AsyncClient) -> None:
    for params in ({"month": "2020-13"}, {"month": "2020-04", "format": "xml"}, {}):
        response = await aggregator.get("/v1/reports/hotline", params=params, headers=admin_headers())
        assert response.status_code == 422 and response.json()["error"] == "invalid_request", params
    assert (await aggregator.get("/v1/reports/hotline", params=APRIL)).status_code == 401


async def test_the_bulletin_shows_the_reports_figures_and_lists_a_silent_centre(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load(collector)
    # L1 on every day of April, three times the calls of each month before, and no more phone
    # appointments than March's two; L2 on April 1-9 and 20-30 only; L3 never.
    events = [contact(org_code="L1", occurred_at=f"2020-04-{d:02d}T09:00:00+08:00") for d in range(1, 31)]
    for month in (1, 2, 3):
        events += [contact(org_code="L1", occurred_at=f"2020-{month:02d}-{d:02d}T09:00:00+08:00") for d in range(1, 11)]
    events[-2:] = [
        contact(org_code="L1", category="appointment", occurred_at=f"2020-03-2{d}T09:00:00+08:00") for d in (1, 2)
    ]
    events += [
        contact(org_code="L2", category="complaint", occurred_at=f"2020-04-{d:02d}T10:00:00+08:00")
        for d in [*range(1, 10), *range(20, 31)]
    ]
    await _post(collector, events)
    await _applied(db, len(events))
    page = parse((await aggregator.get("/v1/reports/bulletin", params=APRIL, headers=admin_headers())).text)
    api = (await aggregator.get("/v1/reports/hotline", params=APRIL, headers=admin_headers())).json()
    rows = table_rows(page, "hotline-province")
    assert (
        [r.attrs.get("data-org-code") for r in rows[:-1]] == [r["org_code"] for r in api["rows"]] == ["L1", "L2", "L3"]
    )
    for row, want in zip(rows, [*api["rows"], api["total"]], strict=True):
        numbers = [int(c.replace(",", "")) for c in row.cells[-len(FIGURES) :]]
        assert numbers == [want[f] for f in FIGURES]
    # L3's city is unknown: the sentence names it by its centre's name, less the line's number.
    assert page.by_id("hotline-province-sentence").text() == (
        "4月，全省12320共接听电话50人次，各市电话量统计为：南京30人次、苏州20人次、无锡0人次。"
    )
    listed = problems(page)
    assert listed["L2"] == [
        ("hotline_silent_days", "已过 30 天中 10 天无来电或工单（连续 3 天及以上）", ["4月10日–19日（10天）"])
    ]
    assert listed["L3"] == [("hotline_no_contacts", "已过 30 天，无一天有来电或工单", ["4月1日–30日（30天）"])]
    assert listed["L1"] == [
        ("hotline_category_stopped", "1 个类别上月有、本月为 0", ["电话预约（上月 2 个）"]),
        (
            "hotline_calls_outlier",
            "受理电话 30 个，前三个月平均 10 个（+200%）",
            ["3月 10 个", "2月 10 个", "1月 10 个"],
        ),
    ]


# --- the demo month ------------------------------------------------------------------------


async def test_the_demo_months_hotline_reproduces_the_printed_bulletin(db: asyncpg.Connection) -> None:
    await check_time_zone(db, "Asia/Shanghai")
    await replace_reference(db, read_reference_folder(REPO / "services/demo/data/reference-2020-04"), "test")
    stream = STREAMS["hotline_contact"]
    events = []
    for offset, (_, raw) in enumerate(plan_demo_month().events(["hotline_contact"])):
        event = stream.model.model_validate(raw)
        events.append(ConsumedEvent(event, event.occurred_at, 0, offset))
    for start in range(0, len(events), 20_000):
        chunk = events[start : start + 20_000]
        await apply_batch(db, "g", "t", Batch(chunk, {0: chunk[-1].offset + 1}), SHANGHAI)

    april = datetime(2020, 4, 1).date()
    report = await hotline_report_of(db, april, None)
    assert compare_hotline_report(expected_hotline(), report.model_dump(mode="json")) == []

    data = await load_quality_month(db, april, None)
    html = render_html(data, now=datetime(2020, 5, 19, tzinfo=SHANGHAI), zone=SHANGHAI, conformance_threshold=0.95)
    page = parse(html)
    sentence = next(p.text() for p in page.iter("p") if p.attrs.get("data-org-code") == "L3201")
    for printed in [
        "共受理咨询电话136783个",
        "咨询类（不含专家咨询）54591个",
        "医疗服务投诉127个",
        "电话预约81506个",
        "心理危机干预375个",
        "医院满意度调查（呼入）112个",
        "自助语音问答72个",
        "受理市12345工单1960件",
        "省12345工单2128件",
    ]:
        assert printed in sentence
    assert page.by_id("hotline-province-sentence").text() == (
        "4月，全省12320共接听电话179331人次，各市电话量统计为：南京136783人次、苏州33172人次、南通2797人次、"
        "镇江2610人次、泰州1673人次、扬州1119人次、无锡1076人次、淮安101人次。"
    )
    # The demo's centres answer every day: no hotline centre has a problem in April.
    assert not {org for org in problems(page) if org.startswith("L32")}
