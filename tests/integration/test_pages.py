"""The institution pages (`/`) on the real aggregator and database: sign-in, sessions, what each reader sees.

The month is posted through the collector (tests/fixtures/pages.py); expected figures are folded
there from the posted events. Each "browser" is an httpx client with its own cookie jar.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from datetime import date, datetime, time, timedelta

import asyncpg
import httpx
import pytest

from tests.fixtures.events import REFERENCE, SHANGHAI
from tests.fixtures.pages import (
    D1_NAME,
    D2_NAME,
    UPLOADS_D1,
    UPLOADS_D2,
    browser,
    channel_days,
    conformance_percent,
    form_token,
    hex_rgb,
    luminance,
    seed_month,
    set_cookies,
    sign_in,
)
from tests.fixtures.stack import ADMIN_TOKEN, StackConfig, admin_headers, aggregator_running
from tests.unit.bulletin.page import Node, parse

pytestmark = pytest.mark.integration

_TITLE = re.compile(r"(\d+)月(\d+)日：([\d,]+) 条")


def _app(aggregator: httpx.AsyncClient) -> object:
    return aggregator.app  # type: ignore[attr-defined]


def _calendars(page: Node) -> list[tuple[str, dict[date, tuple[int, str]]]]:
    """Each heatmap: its label and, per day, (records from the cell's title, the cell's fill)."""
    out = []
    for svg in page.iter("svg"):
        if "heatmap" not in svg.attrs.get("class", ""):
            continue
        days = {}
        for group in svg.iter("g"):
            title = group.iter("title")[0].text()
            match = _TITLE.search(title)
            assert match, title
            day = date(2020, int(match[1]), int(match[2]))
            days[day] = (int(match[3].replace(",", "")), group.iter("rect")[0].attrs["fill"])
        out.append((svg.attrs["aria-label"], days))
    return out


def _row(page: Node, label: str) -> str:
    """The value cell of the row whose header starts with `label`."""
    return _cells(page, label)[0]


def _cells(page: Node, label: str) -> list[str]:
    """The value cells of the row whose header starts with `label`."""
    for tr in page.iter("tr"):
        heads = tr.iter("th")
        if heads and heads[0].text().startswith(label):
            return [td.text() for td in tr.iter("td")]
    raise KeyError(label)


def _section(page: Node, heading_id: str) -> Node:
    return next(s for s in page.iter("section") if s.attrs.get("aria-labelledby") == heading_id)


def _checks(page: Node) -> dict[str, str]:
    """check code -> the text of its row, of the page's data-quality checks."""
    return {tr.attrs["data-check"]: tr.text() for tr in _section(page, "checks").iter("tr") if "data-check" in tr.attrs}


# The plain fold of the quality and timeliness figures over the posted month (April 2020, 30 days,
# no no_upload_days in the reference fixture), written from the contract's words, not the code's.
APRIL_DAYS = 30
_KINDS = {i["org_code"]: i["kind"] for i in REFERENCE["institutions"]}


def _required(kind: str) -> set[str]:
    return {t["table_code"] for t in REFERENCE["tables"] if t["required_for"] in (kind, "both")}


def _declared(org: str) -> set[str]:
    return {d["table_code"] for d in REFERENCE["declarations"] if d["org_code"] == org}


def _folded(org: str) -> dict[str, float | None]:
    """The page's rates of `org`, and the scheduled lags (hours), from the events posted for it."""
    events = [e for e in UPLOADS_D1 + UPLOADS_D2 if e["org_code"] == org and e["record_count"] > 0]
    records = sum(e["record_count"] for e in events)

    def clean(flaw: str) -> float | None:
        return 1 - sum(e.get(flaw, 0) for e in events) / records if records else None

    days = {datetime.fromisoformat(e["uploaded_at"]).astimezone(SHANGHAI).date() for e in events}
    uploaded = {e["table_code"] for e in events}
    declared, required = _declared(org), _required(_KINDS[org])
    expected_tables = declared or required
    expected = len(expected_tables) * APRIL_DAYS
    # Each (table, channel, business date) slot: hours from the end of its business day to its first records.
    first: dict[tuple[str, str, date], float] = {}
    for e in events:
        business = date.fromisoformat(e["business_date"])
        end = datetime.combine(business + timedelta(days=1), time(), SHANGHAI)
        lag = (datetime.fromisoformat(e["uploaded_at"]) - end).total_seconds() / 3600
        key = (e["table_code"], e["mode"], business)
        first[key] = min(lag, first.get(key, lag))

    def slots(mode: str, deadline_h: float) -> float | None:
        ok = sum(1 for (t, m, _), lag in first.items() if t in expected_tables and m == mode and lag <= deadline_h)
        return ok / expected if expected else None

    lags = sorted(lag for (t, m, _), lag in first.items() if m == "scheduled" and t in expected_tables)
    return {
        "completeness": clean("incomplete_records"),
        "conformity": clean("nonconforming_records"),
        "linkage": clean("unlinked_records"),
        "continuity": len(days) / APRIL_DAYS if records else None,
        "coverage": len(declared & uploaded) / len(declared) if declared else len(uploaded) / len(required),
        "reporting_realtime": slots("realtime", math.inf),
        "on_time_realtime": slots("realtime", 0),
        "reporting_scheduled": slots("scheduled", math.inf),
        "on_time_scheduled": slots("scheduled", 6),
        # Nearest rank: the smallest lag with at least that share of the lags at or below it.
        "lag_p50": lags[math.ceil(0.5 * len(lags)) - 1] if lags else None,
        "lag_p90": lags[math.ceil(0.9 * len(lags)) - 1] if lags else None,
    }


def _score(org: str) -> float:
    """100 × the mean of the seven rates (each channel pair averaged), an undefined one counted 0."""
    f = _folded(org)

    def pair(a: str, b: str) -> float | None:
        known = [v for v in (f[a], f[b]) if v is not None]
        return sum(known) / len(known) if known else None

    seven = [
        f["completeness"],
        f["conformity"],
        f["linkage"],
        f["continuity"],
        f["coverage"],
        pair("reporting_realtime", "reporting_scheduled"),
        pair("on_time_realtime", "on_time_scheduled"),
    ]
    return 100 * sum(v or 0.0 for v in seven) / len(seven)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


async def test_an_institution_signs_in_and_sees_its_month(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tokens = await seed_month(collector, db)
    async with browser(_app(aggregator)) as client:
        form = await client.get("/")
        assert form.status_code == 200
        signin_cookie = set_cookies(form)["telemetry_signin"]
        assert "HttpOnly" in signin_cookie and "SameSite=strict" in signin_cookie, signin_cookie
        answer = await client.post("/signin", data={"token": tokens["D1"], "csrf_token": form_token(form.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
        cookie = set_cookies(answer)["telemetry_session"]
        # HttpOnly, SameSite=Strict, not Secure over plain http; the token is nowhere in it.
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie, cookie
        assert tokens["D1"] not in cookie and tokens["D1"] not in str(answer.headers)
        start = await client.get("/")
        assert start.status_code == 303 and start.headers["location"].startswith("/institutions/D1?month=")
        response = await client.get("/institutions/D1?month=2020-04")
        assert response.status_code == 200, response.text
        assert tokens["D1"] not in response.text
        assert "no-store" in response.headers["cache-control"]
        assert "default-src 'none'" in response.headers["content-security-policy"]
    page = parse(response.text)
    assert D1_NAME in page.iter("h1")[0].text()
    # The heatmap: per channel, every day of April with the records posted for its business date.
    expected = channel_days(UPLOADS_D1)
    calendars = _calendars(page)
    assert [label for label, _ in calendars] == [
        "2020年4月 实时 Real-time 每日记录数",
        "2020年4月 定时 Scheduled 每日记录数",
    ]
    cells = {}
    for (_, days), mode in zip(calendars, ("realtime", "scheduled"), strict=True):
        assert len(days) == 30
        assert {day: n for day, (n, _) in days.items() if n} == expected[mode]
        cells.update({(mode, day): cell for day, cell in days.items()})
    # One scale for both calendars: more records never a lighter shade; days without any share one shade.
    ordered = sorted(cells.values())
    for (low, low_fill), (high, high_fill) in itertools.pairwise(ordered):
        assert luminance(hex_rgb(high_fill)) <= luminance(hex_rgb(low_fill)), (low, low_fill, high, high_fill)
    assert len({fill for n, fill in cells.values() if n == 0}) == 1
    assert len({fill for n, fill in cells.values()}) >= 3
    # Missing tables: D1 declared OPV, EHR and DM and sent no DM.
    section = next(s for s in page.iter("section") if s.attrs.get("aria-labelledby") == "missing")
    assert [td.text() for td in section.iter("td")] == ["DM", "糖尿病随访"]
    # The uploads report's row: records by month of upload, conformance folded from the posted pairs.
    assert _row(page, "数据上传量") == f"{sum(e['record_count'] for e in UPLOADS_D1):,}"
    upload_days = {e["uploaded_at"][:10] for e in UPLOADS_D1 if e["record_count"] > 0}
    assert _row(page, "数据上传天数") == str(len(upload_days))
    assert _row(page, "实时与定时符合率") == conformance_percent(UPLOADS_D1)
    # Its kiosk row (one payment of 12.50), and nothing of D2's.
    assert _row(page, "缴费金额") == "12.50" and _row(page, "缴费次数") == "1"
    assert "98,765" not in response.text and D2_NAME not in response.text
    _assert_quality(page, "D1")
    # The planted findings: D1 declared DM and sent none; D2's "declared nothing" is not D1's.
    checks = _checks(page)
    assert "declared_not_uploaded" in checks and "not_declared" not in checks, checks
    # A declared table missing is a warning (docs/contract-decisions.md, 77).
    assert '"DM"' in checks["declared_not_uploaded"] and "提示 Warning" in checks["declared_not_uploaded"]
    assert "declared_tables = 3" in checks["declared_not_uploaded"]


def _assert_quality(page: Node, org: str) -> None:
    """The quality rates, per-channel reporting and on-time rates and lags of `org`, as folded here."""
    f = _folded(org)
    for label, key in (
        ("完整性", "completeness"),
        ("规范性", "conformity"),
        ("关联性", "linkage"),
        ("连续性", "continuity"),
    ):
        assert _row(page, label) == _percent(f[key]), (org, label)
    for label, mode in (("实时 Real-time", "realtime"), ("定时 Scheduled", "scheduled")):
        assert _cells(page, label) == [_percent(f[f"reporting_{mode}"]), _percent(f[f"on_time_{mode}"])], (org, mode)
    for label, key in (("定时延迟中位数", "lag_p50"), ("定时延迟 90%", "lag_p90")):
        value = f[key]
        assert _row(page, label) == ("—" if value is None else f"{value:.2f}"), (org, label)


async def test_an_institution_never_sees_another_ones_page_or_receipts(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tokens = await seed_month(collector, db)
    async with browser(_app(aggregator)) as client:
        assert (await sign_in(client, tokens["D1"])).status_code == 303
        for path in (
            "/institutions/D2?month=2020-04",
            "/institutions/D2",
            "/institutions/NOSUCH",  # 403 as well: whether an institution exists is not an institution's business
            "/institutions/D2/receipt?endpoint=uploads&event_id=d2-opv-rt-12",
        ):
            response = await client.get(path)
            assert response.status_code == 403, (path, response.status_code)
            assert D2_NAME not in response.text and "98,765" not in response.text and "98765" not in response.text
        own = await client.get("/institutions/D1/receipt?endpoint=uploads&event_id=d1-opv-rt-10&month=2020-04")
        assert own.status_code == 200 and "已计入" in own.text and "2020-04" in own.text, own.text
        unknown = await client.get("/institutions/D1/receipt?endpoint=uploads&event_id=never-sent")
        assert unknown.status_code == 404 and "没有这条事件的回执" in unknown.text
        for bad in ("endpoint=uploads", "endpoint=uploads&event_id=a/b", "endpoint=nosuch&event_id=x"):
            refused = await client.get(f"/institutions/D1/receipt?{bad}")
            assert refused.status_code in (404, 422) and refused.headers["content-type"].startswith("text/html")
        # D2's event asked for under D1's own page: the receipt is D1's key, so there is none.
        crossed = await client.get("/institutions/D1/receipt?endpoint=uploads&event_id=d2-opv-rt-12")
        assert crossed.status_code == 404 and "已计入" not in crossed.text
    # The same session cookie does not open the JSON API, and D2's token sees only D2 on its page.
    async with browser(_app(aggregator)) as client:
        assert (await sign_in(client, tokens["D2"])).status_code == 303
        response = await client.get("/institutions/D2?month=2020-04")
        assert response.status_code == 200 and "98,765" in response.text and D1_NAME not in response.text
        assert (await client.get("/institutions/D1?month=2020-04")).status_code == 403
    # D2's own rates and findings, none of D1's: its planted problem is that it declared nothing.
    page = parse(response.text)
    _assert_quality(page, "D2")
    checks = _checks(page)
    assert "not_declared" in checks and "declared_not_uploaded" not in checks, checks
    assert "问题 Problem" in checks["not_declared"]  # nothing declared is a problem (contract decision 77)
    d1 = _folded("D1")
    for key in ("completeness", "conformity", "linkage", "continuity"):
        assert _percent(d1[key]) not in response.text, key
    assert "糖尿病随访" not in response.text and "scorecard" not in response.text


async def test_the_admin_sees_every_institution_and_each_page(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_month(collector, db)
    async with browser(_app(aggregator)) as client:
        assert (await sign_in(client, ADMIN_TOKEN)).status_code == 303
        listing = await client.get("/?month=2020-04")
        assert listing.status_code == 200, listing.text
        links = {a.attrs["href"] for a in parse(listing.text).iter("a")}
        assert {f"/institutions/{org}?month=2020-04" for org in ("D1", "D2", "H1")} <= links
        # The scorecard: the worst score first, each linked to its page, March (nothing posted) beside it.
        card = _section(parse(listing.text), "scorecard")
        rows = [tr for tr in card.iter("tr") if "data-org" in tr.attrs]
        expected = sorted(("D1", "D2", "H1"), key=_score)
        assert [tr.attrs["data-org"] for tr in rows] == expected
        assert len({round(_score(org), 1) for org in expected}) == 3  # no tie for the tie-breaks to decide
        for rank, (tr, org) in enumerate(zip(rows, expected, strict=True), start=1):
            cells = [td.text() for td in tr.iter("td")]
            assert cells[0] == str(rank)
            assert abs(float(cells[2]) - _score(org)) < 0.011, (org, cells[2], _score(org))
            assert cells[5] == "0.00", (org, cells)
            assert tr.iter("a")[0].attrs["href"] == f"/institutions/{org}?month=2020-04"
        for org, name in (("D1", D1_NAME), ("D2", D2_NAME)):
            page = await client.get(f"/institutions/{org}?month=2020-04")
            assert page.status_code == 200 and name in page.text
        assert (await client.get("/institutions/NOSUCH?month=2020-04")).status_code == 404
        receipt = await client.get("/institutions/D2/receipt?endpoint=uploads&event_id=d2-opv-rt-12")
        assert receipt.status_code == 200 and "已计入" in receipt.text
        assert (await client.get("/institutions/D1?month=2020-13")).status_code == 422


async def test_sign_in_refuses_a_wrong_token_and_a_form_from_elsewhere(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tokens = await seed_month(collector, db)
    async with browser(_app(aggregator)) as client:
        wrong = await sign_in(client, tokens["D1"] + "x")
        assert wrong.status_code == 401 and "telemetry_session" not in set_cookies(wrong)
    async with browser(_app(aggregator)) as client:
        # A form posted without the sign-in cookie (another site's page cannot read or send it).
        forged = await client.post("/signin", data={"token": tokens["D1"], "csrf_token": "made-up"})
        assert forged.status_code == 403 and "telemetry_session" not in set_cookies(forged)
        not_form = await client.post("/signin", json={"token": tokens["D1"]})
        assert not_form.status_code == 415
        # Without a session every page sends the browser to the sign-in form.
        away = await client.get("/institutions/D1?month=2020-04")
        assert away.status_code == 303 and away.headers["location"] == "/"
        assert (await client.get("/", headers={"Cookie": "telemetry_session=made-up"})).status_code == 200


async def test_sign_out_needs_the_form_token_and_ends_the_session_on_the_server(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tokens = await seed_month(collector, db)
    async with browser(_app(aggregator)) as client:
        assert (await sign_in(client, tokens["D1"])).status_code == 303
        page = await client.get("/institutions/D1?month=2020-04")
        cookie = client.cookies["telemetry_session"]
        assert (await client.post("/signout", data={"csrf_token": "wrong"})).status_code == 403
        assert (await client.get("/institutions/D1?month=2020-04")).status_code == 200
        out = await client.post("/signout", data={"csrf_token": form_token(page.text)})
        assert out.status_code == 303 and 'telemetry_session=""' in set_cookies(out)["telemetry_session"]
        assert await db.fetchval("SELECT count(*) FROM page_sessions") == 0
    # A copy of the old cookie opens nothing any more.
    async with browser(_app(aggregator)) as client:
        again = await client.get("/institutions/D1?month=2020-04", headers={"Cookie": f"telemetry_session={cookie}"})
        assert again.status_code == 303


async def test_a_revoked_token_ends_its_sessions(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tokens = await seed_month(collector, db)
    async with browser(_app(aggregator)) as client:
        assert (await sign_in(client, tokens["D1"])).status_code == 303
        assert (await client.get("/institutions/D1?month=2020-04")).status_code == 200
        revoked = await collector.delete(f"/v1/admin/tokens/{tokens['D1:id']}", headers=admin_headers())
        assert revoked.status_code == 200
        for _ in range(100):
            if (await client.get("/institutions/D1?month=2020-04")).status_code == 303:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the session of a revoked token still opened the page after 10 s")


async def test_secure_cookie_over_tls_and_sessions_expire(
    stack_config: StackConfig, collector: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with aggregator_running(stack_config, page_session_hours=1 / 3600) as aggregator:
        tokens = await seed_month(collector, db)
        app = _app(aggregator)
        async with browser(app, "https") as client:
            answer = await sign_in(client, tokens["D1"])
            assert "; Secure" in set_cookies(answer)["telemetry_session"]
        async with browser(app) as client:
            # Not trusted by default: anyone can send the header to a plain-http listener.
            form = await client.get("/", headers={"X-Forwarded-Proto": "https"})
            assert "Secure" not in set_cookies(form)["telemetry_signin"]
            assert (await sign_in(client, tokens["D1"])).status_code == 303
            assert (await client.get("/institutions/D1?month=2020-04")).status_code == 200
            await asyncio.sleep(1.2)
            assert (await client.get("/institutions/D1?month=2020-04")).status_code == 303
    async with aggregator_running(stack_config, page_trust_forwarded_proto=True) as aggregator:
        client = browser(_app(aggregator))
        async with client:
            form = await client.get("/", headers={"X-Forwarded-Proto": "https"})
            assert "; Secure" in set_cookies(form)["telemetry_signin"]
