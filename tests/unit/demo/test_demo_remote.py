"""The demo month's remote uploads, through the platform's fold, report and bulletin section, reproduce the print.

2020年4月南京市远程医疗系统数据统计: every printed figure (the shared reference CSVs, through
`services/demo/expected.py`), each in its printed sentence on the bulletin page, and the top three
per platform. The figures the bulletin does not print (the consultation platform's month, who
uploaded while not connected) are checked against the tests' own fold of the same events
(`streams`, tests/fixtures/streams_fold.py). The whole month (about 0.9 million uploads) goes
through the stream's own fold in memory, as the aggregator folds a batch; the database's side
of the report is tests/integration/test_remote_uploads.py's.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.bulletin.render import render_html
from services.demo.bulletin import BULLETIN_DIR
from services.demo.expected import compare_remote_report, expected_remote_platforms
from services.demo.stream import DemoMonth
from services.quality.month import QualityMonth
from services.storage.reference import read_reference_folder
from services.streams import STREAMS, ConsumedEvent
from services.streams.remote_uploads.report import RemoteMonth, remote_month_from_deltas, remote_report
from services.streams.rollups import Deltas
from tests.fixtures.remote import snapshot_of
from tests.fixtures.streams_fold import REFERENCE_DIR, StreamsFold
from tests.unit.bulletin.page import parse, problems

APRIL = date(2020, 4, 1)
SHANGHAI = ZoneInfo("Asia/Shanghai")
BATCH = 20_000


@pytest.fixture(scope="module")
def remote_month(demo_month: DemoMonth) -> RemoteMonth:
    """The month's uploads, each (org_code, event_id) once, folded by the stream's fold."""
    stream = STREAMS["remote_upload"]
    deltas = Deltas()
    seen: set[tuple[str, str]] = set()
    batch: list[object] = []

    def fold() -> None:
        events = stream.list_adapter.validate_python(batch)
        stream.fold([ConsumedEvent(e, e.uploaded_at, 0, 0) for e in events], SHANGHAI, deltas)
        batch.clear()

    for _, raw in demo_month.events(["remote_upload"]):
        key = (str(raw["org_code"]), str(raw["event_id"]))
        if key not in seen:  # what event_keys does in the store
            seen.add(key)
            batch.append(raw)
            if len(batch) == BATCH:
                fold()
    fold()
    ref = read_reference_folder(REFERENCE_DIR)
    names = {i.org_code: i.name for i in ref.institutions}
    return remote_month_from_deltas(deltas, APRIL, snapshot_of(ref), names)


def test_the_report_reproduces_every_printed_figure(remote_month: RemoteMonth, streams: StreamsFold) -> None:
    report = remote_report(remote_month).model_dump(mode="json")
    assert compare_remote_report(expected_remote_platforms(), report) == []
    # What the bulletin does not print, against the plain fold: every month sum, every top three.
    for platform in report["platforms"]:
        name = platform["platform"]
        for key in ("consultations", "cases", "reports", "specimens", "images"):
            assert platform[key] == streams.remote[name][key], (name, key)
        top = sorted((-v, org) for org, v in streams.remote_by_org[name].items() if v > 0)[:3]
        assert [(t["org_code"], t["value"]) for t in platform["top_uploaders"]] == [(org, -v) for v, org in top]
    assert report["platforms"][0]["top_uploaders"]  # the consultation platform's: not printed, but defined


def test_the_bulletin_prints_each_figure_in_its_sentence_and_lists_the_unconnected(
    remote_month: RemoteMonth, streams: StreamsFold
) -> None:
    data = QualityMonth(APRIL, None, [], [], [], {}, {}, remote=remote_month)
    html = render_html(
        data, now=datetime(2020, 5, 19, 9, 30, tzinfo=SHANGHAI), zone=SHANGHAI, conformance_threshold=0.95
    )
    page = parse(html)
    section = page.by_id("remote-platforms")
    paragraphs = {p.attrs["data-platform"]: p.text() for p in section.iter("p") if "data-platform" in p.attrs}
    with (BULLETIN_DIR / "remote_platforms_2020-04.csv").open(encoding="utf-8", newline="") as handle:
        printed = list(csv.DictReader(handle))
    assert len(printed) == 24
    assert [row["printed_as"] for row in printed if row["printed_as"] not in paragraphs[row["platform"]]] == []
    # The top three as printed (with the canonical name where the print abbreviates one); the
    # consultation platform's are not printed (they are checked against the fold above).
    shown = [
        (tr.attrs["data-org-code"], *[td.text() for td in tr.iter("td")][2:])
        for tr in section.iter("tr")
        if "data-org-code" in tr.attrs and tr.iter("td")[0].text() != "远程医学会诊平台"
    ]
    printed_top = [
        (org, name, f"{value:,}")
        for platform in expected_remote_platforms()
        for org, name, value in platform.top_uploaders
    ]
    assert shown == printed_top
    # Uploads on days not connected: every such institution is listed, and no other.
    listed = {
        org for org, found in problems(page).items() if any(c == "unconnected_remote_upload" for c, _, _ in found)
    }
    assert listed == {org for _, org in streams.unconnected}
    assert len(listed) >= 3  # before a connection starts, after one ended, without any
