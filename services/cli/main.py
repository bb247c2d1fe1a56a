"""`telemetry`: reference data, tokens, reports, the demo month and database upkeep."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from pydantic import BaseModel
from rich.console import Console

from services.cli import render
from services.contract.models import InstitutionKind
from services.quality.settings import QualitySettings, Thresholds
from services.reports.catalog import REPORTS, Report, uploads_report_of
from services.send.files import Format as FileFormat
from services.settings import DEFAULT_CONSUMER_GROUP, ToolSettings
from services.storage.connection import Connection
from services.storage.database import open_pool
from services.storage.errors import ReferenceDataError, TokenNotFoundError
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow

app = typer.Typer(help="Health upload telemetry: administration, reports and the demo month.", no_args_is_help=True)
tokens_app = typer.Typer(help="Issue, list and revoke institution tokens.", no_args_is_help=True)
reference_app = typer.Typer(
    help="Reference data (institutions, tables, declarations, kiosks, platform connections, ...).", no_args_is_help=True
)
report_app = typer.Typer(help="Print the monthly reports as tables (or CSV/JSON).", no_args_is_help=True)
demo_app = typer.Typer(help="The April 2020 demo month.", no_args_is_help=True)
dead_app = typer.Typer(help="List and replay the dead-letter topic.", no_args_is_help=True)
months_app = typer.Typer(help="Months: list them, close an open one, archive a closed one.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(reference_app, name="reference")
app.add_typer(report_app, name="report")
app.add_typer(demo_app, name="demo")
app.add_typer(dead_app, name="dead-letters")
app.add_typer(months_app, name="months")

# Reports are wide; outside a terminal (logs, CI) rich would squeeze them into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def _settings() -> ToolSettings:
    return ToolSettings()


def _with_db(action: Callable[[Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        pool = await open_pool(_settings().database_url.get_secret_value(), max_size=2, wait_s=10)
        try:
            async with pool.acquire() as conn:
                return await action(conn)
        finally:
            await pool.close()

    return asyncio.run(run())


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def _month(text: str) -> date:
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        _fail(f"month must be YYYY-MM, got {text!r}")
        raise


@app.command()
def migrate() -> None:
    """Apply pending database migrations (the services also do this at start)."""
    _with_db(lambda conn: asyncio.sleep(0))
    console.print("database is migrated")


@reference_app.command("load")
def reference_load(
    folder: Annotated[Path, typer.Argument(help="folder with the reference CSV files (four required, four optional)")],
) -> None:
    """Replace the reference set with the CSV files of FOLDER (atomic, idempotent, versioned)."""
    from services.storage.reference import read_reference_folder, replace_reference

    try:
        ref = read_reference_folder(folder)
        result = _with_db(lambda conn: replace_reference(conn, ref, source=f"cli:{folder}"))
    except ReferenceDataError as exc:
        _fail(str(exc))
        return
    verb = "loaded as version" if result.created else "unchanged, still version"
    revision2 = [
        f"{count} {what}"
        for count, what in (
            (result.platform_connections, "platform connections"),
            (result.booking_platforms, "booking platforms"),
            (result.opening_balances, "opening balances"),
            (result.no_upload_days, "no-upload days"),
        )
        if count
    ]
    console.print(
        f"reference data {verb} {result.version}: {result.institutions} institutions, {result.tables} tables, "
        f"{result.declarations} declarations, {result.kiosks} kiosks" + "".join(f", {part}" for part in revision2)
    )


@tokens_app.command("issue")
def tokens_issue(org_code: str, label: Annotated[str, typer.Option(help="a note for operators")] = "") -> None:
    """Issue a token for ORG_CODE; it is printed once and only its hash is kept."""
    from services.storage.tokens import issue_token

    try:
        issued = _with_db(lambda conn: issue_token(conn, org_code, label, actor="cli"))
    except ReferenceDataError as exc:
        _fail(str(exc))
        return
    err.print(f"token {issued.token_id} for {issued.org_code} (shown once, store it now):")
    print(issued.token)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke the token TOKEN_ID; refused from the next request on."""
    from services.storage.tokens import revoke_token

    try:
        _with_db(lambda conn: revoke_token(conn, token_id, actor="cli"))
    except TokenNotFoundError:
        _fail(f"no token with id {token_id!r}")
    console.print(f"token {token_id} revoked")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (ids, institutions, state; never secrets)."""
    from services.storage.tokens import list_tokens

    render.tokens(console, _with_db(list_tokens))


Format = Annotated[str, typer.Option("--format", "-f", help="table, csv or json")]


def _emit(
    model: type[UploadReportRow] | type[KioskReportRow],
    rows: list[UploadReportRow] | list[KioskReportRow],
    fmt: str,
    title: str,
) -> None:
    from services.reports.common import to_csv

    if fmt == "csv":
        sys.stdout.write(to_csv(model, rows))
    elif fmt == "json":
        import orjson

        sys.stdout.write(
            orjson.dumps([r.model_dump(mode="json") for r in rows], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    elif fmt == "table":
        render.report(console, model, rows, title)
    else:
        _fail(f"unknown format {fmt!r}; use table, csv or json")


def _json_or_table(fmt: str, refusal: str, load: Callable[[], M], show: Callable[[M], None]) -> None:
    """Print a report that is not one table: its JSON, or `show` for `table`.

    The format is checked before `load` reads the database; `refusal` is the message for any other.
    """
    if fmt not in ("table", "json"):
        _fail(refusal)
    report = load()
    if fmt == "json":
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        show(report)


AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="closed (the figures frozen at the close) or an RFC 3339 time (events received by then)"
    ),
]


def _report_body(report: Report, first: date, as_of: str | None) -> Any:
    """A report's JSON body for the admin, live or as of the close or a time (`GET /v1/reports/...?as_of=`)."""
    from services.aggregator.asof import read_report
    from services.reports.cutoff import parse_as_of
    from services.storage.errors import MonthNotFoundError, MonthStateError, SnapshotNotFoundError

    when = None
    if as_of is not None:
        try:
            when = parse_as_of(as_of)
        except ValueError as exc:
            _fail(str(exc))
    zone = _settings().zone
    try:
        return _with_db(lambda conn: read_report(conn, report, first, None, when, zone))
    except (MonthNotFoundError, MonthStateError, SnapshotNotFoundError) as exc:
        _fail(str(exc))


@report_app.command("uploads")
def report_uploads(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    kind: Annotated[InstitutionKind, typer.Option(help="district or hospital")] = InstitutionKind.DISTRICT,
    fmt: Format = "table",
    as_of: AsOf = None,
) -> None:
    """The monthly upload report (the bulletin's 数据采集情况 table)."""
    body = _report_body(uploads_report_of(kind), _month(month), as_of)
    rows = [UploadReportRow.model_validate(row) for row in body]
    title = f"{month} 数据采集情况（{'区' if kind is InstitutionKind.DISTRICT else '医院'}）uploads by {kind.value}"
    _emit(UploadReportRow, rows, fmt, title)


@report_app.command("kiosks")
def report_kiosks(
    month: Annotated[str, typer.Option(help="YYYY-MM")], fmt: Format = "table", as_of: AsOf = None
) -> None:
    """The monthly kiosk report (自助智能医疗服务终端使用情况)."""
    rows = [KioskReportRow.model_validate(row) for row in _report_body(REPORTS["kiosks"], _month(month), as_of)]
    _emit(KioskReportRow, rows, fmt, f"{month} 自助智能医疗服务终端使用情况 kiosk use")


@report_app.command("hotline")
def report_hotline(
    month: Annotated[str, typer.Option(help="YYYY-MM")], fmt: Format = "table", as_of: AsOf = None
) -> None:
    """The monthly 12320 hotline figures per centre (南京12320卫生热线, 全省12320)."""
    from services.reports.common import to_csv
    from services.streams.hotline.model import HotlineReport, HotlineRow
    from services.streams.hotline.report import csv_rows

    report = HotlineReport.model_validate(_report_body(REPORTS["hotline"], _month(month), as_of))
    if fmt == "csv":
        sys.stdout.write(to_csv(HotlineRow, csv_rows(report)))
    elif fmt == "json":
        import orjson

        sys.stdout.write(orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n")
    elif fmt == "table":
        render.hotline(console, report, f"{month} 12320卫生热线 hotline calls and work orders per centre")
    else:
        _fail(f"unknown format {fmt!r}; use table, csv or json")


@report_app.command("remote-platforms")
def report_remote_platforms(
    month: Annotated[str, typer.Option(help="YYYY-MM")], fmt: Format = "table", as_of: AsOf = None
) -> None:
    """The four remote-medicine platforms of a month (远程医疗系统数据统计): table or json (not one table: no csv)."""
    from services.streams.remote_uploads.model import RemotePlatformsReport

    _json_or_table(
        fmt,
        f"format {fmt!r}: the remote-platforms report is not one table; use table or json",
        lambda: RemotePlatformsReport.model_validate(_report_body(REPORTS["remote-platforms"], _month(month), as_of)),
        lambda report: render.remote_platforms(
            console, report, f"{month} 远程医疗系统数据统计 remote-medicine platforms"
        ),
    )


@report_app.command("appointments")
def report_appointments(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json (two tables: no csv)")] = "table",
    as_of: AsOf = None,
) -> None:
    """The monthly appointments report (预约挂号服务统计表, 分途径预约情况统计, bookings to date)."""
    from services.streams.appointments.model import AppointmentReport

    _json_or_table(
        fmt,
        f"unknown format {fmt!r}; use table or json (the report is two tables, so there is no csv)",
        lambda: AppointmentReport.model_validate(_report_body(REPORTS["appointments"], _month(month), as_of)),
        lambda report: render.appointments(
            console, report, f"{month} 预约挂号服务统计表 bookings by institution and channel"
        ),
    )


@report_app.command("bulletin")
def report_bulletin(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    out: Annotated[Path, typer.Option(help="folder for bulletin-YYYY-MM.html and .pdf")] = Path(),
) -> None:
    """The monthly data-quality bulletin as a self-contained HTML page and a PDF (needs Chromium)."""
    from services.bulletin.errors import BulletinError
    from services.bulletin.service import bulletin_files, write_bulletin
    from services.bulletin.settings import BulletinSettings

    first, zone, options = _month(month), _settings().zone, BulletinSettings()
    thresholds = _thresholds()
    try:
        html, document = _with_db(
            lambda conn: bulletin_files(conn, first, settings=options, zone=zone, thresholds=thresholds)
        )
    except BulletinError as exc:
        _fail(str(exc))
        return
    written = write_bulletin(out, first, html, document)
    console.print(f"wrote {written.html} and {written.pdf} ({written.pages} pages)")


def _thresholds() -> Thresholds:
    """The checks' thresholds from the environment (TELEMETRY_QUALITY_*, the bulletin's conformance threshold)."""
    from services.bulletin.settings import BulletinSettings

    return Thresholds.of(QualitySettings(), BulletinSettings().conformance_threshold)


@report_app.command("quality")
def report_quality(month: Annotated[str, typer.Option(help="YYYY-MM")], fmt: Format = "table") -> None:
    """The month's data-quality checks: each finding with its code, severity, sentence and figures."""
    from services.quality.report import QualityReport, quality_report

    def load() -> QualityReport:
        first, zone, thresholds = _month(month), _settings().zone, _thresholds()
        return _with_db(lambda conn: quality_report(conn, first, None, zone=zone, thresholds=thresholds))

    _json_or_table(
        fmt,
        f"unknown format {fmt!r}; use table or json (the report is not one table, so there is no csv)",
        load,
        lambda report: render.quality(console, report, f"{month} 数据质量检查 data-quality checks"),
    )


@report_app.command("scorecard")
def report_scorecard(month: Annotated[str, typer.Option(help="YYYY-MM")], fmt: Format = "table") -> None:
    """Districts and hospitals ranked by data quality, the worst first, with the previous month beside."""
    from services.quality.scorecard import Scorecard, scorecard

    def load() -> Scorecard:
        first, zone, thresholds = _month(month), _settings().zone, _thresholds()
        return _with_db(lambda conn: scorecard(conn, first, None, zone=zone, thresholds=thresholds))

    _json_or_table(
        fmt,
        f"unknown format {fmt!r}; use table or json",
        load,
        lambda card: render.scorecard(console, card, f"{month} 数据质量排名 data-quality scorecard (worst first)"),
    )


@report_app.command("restatements")
def report_restatements(
    month: Annotated[str, typer.Option(help="YYYY-MM, a closed month")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """The cells of a closed month's reports that changed after its close (GET /v1/reports/restatements)."""
    import orjson
    from rich.table import Table

    from services.reports.restatements import MonthRestatements, restatements
    from services.storage.errors import MonthNotFoundError, MonthStateError, SnapshotNotFoundError
    from services.storage.months import month_of

    if fmt not in ("table", "json"):
        _fail(f"unknown format {fmt!r}; use table or json")
    first = _month(month)
    zone = _settings().zone

    async def run(conn: Connection) -> MonthRestatements:
        found = await month_of(conn, first)
        if found is None:
            raise MonthNotFoundError(f"no event has counted in {month}, and it was never closed")
        if found.cutoff is None:
            raise MonthStateError(f"{month} is open: restatements need a closed month")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await restatements(conn, found, zone)

    try:
        result = _with_db(run)
    except (MonthNotFoundError, MonthStateError, SnapshotNotFoundError) as exc:
        _fail(str(exc))
        return
    body = result.as_dict()
    if fmt == "json":
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(
        title=f"{month} restatements: closed at {body['cutoff']}, {body['events_after_cutoff']} events after the cutoff"
    )
    for column in ("report", "org_code", "field", "at close", "now", "events after"):
        table.add_column(column)
    for cell in result.cells:
        table.add_row(
            cell.report,
            cell.org_code or "(total)",
            cell.field,
            str(cell.value_at_close),
            str(cell.value_now),
            str(cell.events_after_cutoff),
        )
    console.print(table)


@report_app.command("missing-uploads")
def report_missing(day: Annotated[str, typer.Option("--date", help="YYYY-MM-DD")]) -> None:
    """Institutions that uploaded in the 7 days before DATE but not on it."""
    from services.streams.uploads.report import missing_uploads

    try:
        when = date.fromisoformat(day)
    except ValueError:
        _fail(f"date must be YYYY-MM-DD, got {day!r}")
        return
    render.missing(console, _with_db(lambda conn: missing_uploads(conn, when, None)), when)


def demo_kinds_with_endpoints() -> tuple[str, ...]:
    """The demo month's streams this platform registers (services/streams), in the demo's order.

    The demo package knows nothing of the platform; the platform knows which of the demo's
    streams it has endpoints for, so registering a stream is what switches its replay on.
    """
    from services.demo.stream import KINDS
    from services.streams import STREAMS

    return tuple(kind for kind in KINDS if kind in STREAMS)


@demo_app.command("replay")
def demo_replay(
    concurrency: Annotated[int, typer.Option(help="requests in flight")] = 8,
    seed: Annotated[int, typer.Option(help="generator seed")] = 20200401,
    stream: Annotated[
        list[str] | None,
        typer.Option(
            help="a stream to post (repeatable): upload, kiosk, appointment, hotline_contact, remote_upload,"
            " or all; default: every stream the platform has an endpoint for"
        ),
    ] = None,
) -> None:
    """Generate the April 2020 stream and post it through the collector's HTTP API."""
    from services.demo import replay
    from services.demo.stream import KINDS

    settings = _settings()
    if settings.admin_token is None:
        _fail("set TELEMETRY_ADMIN_TOKEN to post as the platform's relay")
        return
    kinds = KINDS if stream == ["all"] else tuple(stream) if stream else demo_kinds_with_endpoints()
    if unknown := set(kinds) - set(KINDS):
        _fail(f"unknown stream {sorted(unknown)}; streams are {', '.join(KINDS)} (or all)")
        return
    token = settings.admin_token.get_secret_value()
    result = asyncio.run(
        replay.replay_month(settings.collector_url, token, concurrency=concurrency, seed=seed, kinds=kinds)
    )
    console.print(f"posted {result}")


@app.command("send")
def send(
    files: Annotated[
        list[Path], typer.Argument(help="JSON-lines (.jsonl, .ndjson, .json) or CSV (.csv) files of events")
    ],
    stream: Annotated[
        str | None,
        typer.Option(
            help="the stream of every file, by name or endpoint (upload or uploads, ...);"
            " default: told from each file's fields"
        ),
    ] = None,
    fmt: Annotated[FileFormat | None, typer.Option("--format", help="default: from each file's suffix")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TELEMETRY_TOKEN",
            show_default=False,
            help="bearer token (TELEMETRY_TOKEN; default TELEMETRY_ADMIN_TOKEN)",
        ),
    ] = None,
    collector_url: Annotated[
        str | None, typer.Option(help="the collector (default TELEMETRY_COLLECTOR_URL, http://127.0.0.1:8080)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="events per request (at most 1,000)")] = 1000,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="requests in flight")] = 4,
    max_retries: Annotated[int, typer.Option(min=0, help="posts of the same batch after a 429/503/no answer")] = 10,
    max_wait: Annotated[float, typer.Option(min=0, help="longest wait before one retry, seconds")] = 60.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds to wait for one answer")] = 30.0,
    progress: Annotated[bool, typer.Option(help="show a progress bar (on standard error)")] = True,
) -> None:
    """Post the events of FILES to the collector in batches (backfill; README.md, "Backfill: telemetry send").

    Refused events are written beside each file, to FILE.refused.jsonl.

    Exit 0: every event accepted; 1: some refused; 2: a file could not be read; 3: some not acknowledged.
    """
    from services.cli import sending as report
    from services.send.errors import SourceError
    from services.send.files import open_source
    from services.send.poster import SendOptions, send_files
    from services.streams import STREAMS

    settings = _settings()
    secret = token or (settings.admin_token.get_secret_value() if settings.admin_token else None)
    if not secret:
        _fail("give a token: --token or TELEMETRY_TOKEN (an institution's), or TELEMETRY_ADMIN_TOKEN")
        return
    try:
        sources = [open_source(path, STREAMS, stream, fmt) for path in files]
    except SourceError as exc:
        _fail(str(exc))
        return
    options = SendOptions(
        batch_size=batch_size, concurrency=concurrency, max_retries=max_retries, max_wait_s=max_wait, timeout_s=timeout
    )
    base_url = collector_url or settings.collector_url
    if not base_url.startswith(("http://", "https://")):
        # Not a connection that failed now and may work later: retrying it would only wait.
        _fail(f"the collector URL must start with http:// or https://, got {base_url!r}")
        return
    with report.progress_bar(err, sum(s.count_lines() for s in sources), enabled=progress) as on_change:
        result = asyncio.run(send_files(sources, base_url, secret, options, on_change=on_change))
    report.summary(console, result)
    raise typer.Exit(report.exit_code_of(result))


@demo_app.command("check")
def demo_check() -> None:
    """Compare the April 2020 reports in the database with the bulletin, cell by cell."""
    from services.demo.bulletin import load_bulletin
    from services.demo.expected import (
        UNPRINTED,
        compare_appointment_report,
        compare_hotline_report,
        compare_kiosk_report,
        compare_remote_report,
        compare_upload_report,
        expected_appointments,
        expected_hotline,
        expected_kiosk_rows,
        expected_remote_platforms,
        expected_upload_rows,
    )
    from services.demo.reference import build_reference
    from services.streams.appointments.model import AppointmentReport
    from services.streams.appointments.report import appointments_report
    from services.streams.hotline.model import HotlineReport
    from services.streams.hotline.report import hotline_report_of
    from services.streams.kiosk.report import kiosks_report
    from services.streams.remote_uploads.model import RemotePlatformsReport
    from services.streams.remote_uploads.report import remote_platforms_report
    from services.streams.uploads.report import uploads_report

    april = date(2020, 4, 1)

    async def fetch(
        conn: Connection,
    ) -> tuple[
        list[UploadReportRow],
        list[UploadReportRow],
        list[KioskReportRow],
        AppointmentReport,
        HotlineReport,
        RemotePlatformsReport,
    ]:
        return (
            await uploads_report(conn, april, InstitutionKind.DISTRICT, None),
            await uploads_report(conn, april, InstitutionKind.HOSPITAL, None),
            await kiosks_report(conn, april, None),
            await appointments_report(conn, april, None),
            await hotline_report_of(conn, april, None),
            await remote_platforms_report(conn, april, None),
        )

    districts, hospitals, kiosks, appointments, hotline, remote = _with_db(fetch)
    bulletin = load_bulletin()
    reference = build_reference(bulletin)
    checks = {
        "district uploads (数据采集情况（区）)": compare_upload_report(
            expected_upload_rows("district", reference=reference), [r.model_dump(mode="json") for r in districts]
        ),
        "hospital uploads (数据采集情况（医院）)": compare_upload_report(
            expected_upload_rows("hospital", reference=reference), [r.model_dump(mode="json") for r in hospitals]
        ),
        "kiosk use (自助终端使用情况)": compare_kiosk_report(
            expected_kiosk_rows(reference), [r.model_dump(mode="json") for r in kiosks]
        ),
        "12320 hotline (南京12320卫生热线, 全省12320)": compare_hotline_report(
            expected_hotline(bulletin, reference), hotline.model_dump(mode="json")
        ),
        "appointments (预约挂号服务统计表, 分途径预约情况统计, 总预约挂号量)": compare_appointment_report(
            expected_appointments(bulletin, reference), appointments.model_dump(mode="json")
        ),
        "remote platforms (远程医疗系统数据统计)": compare_remote_report(
            expected_remote_platforms(bulletin, reference), remote.model_dump(mode="json")
        ),
    }
    failed = False
    for name, problems in checks.items():
        if problems:
            failed = True
            console.print(f"[red]✗[/] {name}: {len(problems)} differences")
            for problem in problems[:20]:
                console.print(f"    {problem}")
        else:
            console.print(f"[green]✓[/] {name} reproduces the April 2020 bulletin")
    for kind, fields in UNPRINTED.items():
        console.print(f"  not printed, so not checked here ({kind}): {', '.join(sorted(fields))}")
    console.print("  not printed, so not checked here (hotline): the other centres' categories and work orders")
    if failed:
        raise typer.Exit(1)


@dead_app.command("list")
def dead_letters_list(
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    start: Annotated[int, typer.Option(help="from this offset of the dead-letter topic")] = 0,
) -> None:
    """Show dead letters: why each was refused and where it came from."""
    from services.aggregator.deadletters import read_dead_letters

    settings = _settings()
    letters = asyncio.run(read_dead_letters(settings.kafka_bootstrap, settings.dead_letter_topic, limit, start))
    render.dead_letters(console, letters)


@dead_app.command("replay")
def dead_letters_replay(
    offsets: Annotated[list[int] | None, typer.Argument(help="offsets to replay (default: all)")] = None,
    limit: Annotated[int, typer.Option(help="read at most this many")] = 100_000,
) -> None:
    """Publish dead events to the events topic again, after their cause was fixed."""
    from services.aggregator.deadletters import read_dead_letters, replay_dead_letters

    settings = _settings()
    letters = asyncio.run(read_dead_letters(settings.kafka_bootstrap, settings.dead_letter_topic, limit))
    if offsets:
        wanted = set(offsets)
        letters = [letter for letter in letters if letter.offset in wanted]
    sent = asyncio.run(replay_dead_letters(settings.kafka_bootstrap, settings.events_topic, letters))
    skipped = len(letters) - sent
    console.print(f"replayed {sent} dead events; {skipped} undecodable records cannot be replayed as events")


@months_app.command("list")
def months_list() -> None:
    """Every month events have counted in, with its state (open, closed, archived)."""
    from services.storage.months import list_months

    for m in _with_db(list_months):
        row = m.as_dict()
        console.print(
            f"{row['month']}  {row['state']:<8}  closed {row['closed_at'] or '-'}  archived {row['archived_at'] or '-'}"
        )


@months_app.command("close")
def months_close(month: Annotated[str, typer.Argument(help="YYYY-MM, an open month")]) -> None:
    """Close a month now: record the cutoff and freeze every report of it (run `wait-applied` first)."""
    import orjson

    from services.storage.errors import MonthNotFoundError, MonthStateError
    from services.storage.months import Month, close_month

    first = _month(month)

    async def run(conn: Connection) -> Month:
        closed = await close_month(conn, first)
        await conn.execute(
            "INSERT INTO admin_audit (actor, action, subject, details) VALUES ('cli', 'month.close', $1, $2)",
            month,
            orjson.dumps({"cutoff": closed.as_dict()["cutoff"]}).decode(),
        )
        return closed

    try:
        closed = _with_db(run)
    except (MonthNotFoundError, MonthStateError) as exc:
        _fail(str(exc))
        return
    console.print(f"{month} closed at {closed.as_dict()['cutoff']}: its reports are frozen (as_of=closed)")


@months_app.command("archive")
def months_archive(month: Annotated[str, typer.Argument(help="YYYY-MM, a closed month")]) -> None:
    """Archive a closed month now: its dedupe keys are dropped, its events refused from then on."""
    from services.storage.errors import MonthNotFoundError, MonthStateError
    from services.storage.months import archive_month

    first = _month(month)

    async def run(conn: Connection) -> None:
        await archive_month(conn, first)
        await conn.execute(
            "INSERT INTO admin_audit (actor, action, subject, details) VALUES ('cli', 'month.archive', $1, '{}')",
            month,
        )

    try:
        _with_db(run)
    except (MonthNotFoundError, MonthStateError) as exc:
        _fail(str(exc))
    console.print(f"{month} archived: its keys are dropped and its events refused from now on")


@app.command("receipt")
def receipt(
    endpoint: Annotated[str, typer.Argument(help="uploads, kiosk-transactions, ...")],
    org_code: str,
    event_id: str,
) -> None:
    """Was this event counted (in which month, when), dead-lettered (why), or neither? Exit 1 if neither."""
    import orjson

    from services.storage.receipts import find_receipt
    from services.streams import STREAMS

    stream = next((s for s in STREAMS.values() if s.endpoint == endpoint), None)
    if stream is None:
        _fail(f"no stream is posted to /v1/{endpoint}; one of {', '.join(s.endpoint for s in STREAMS.values())}")
        return
    found = _with_db(lambda conn: find_receipt(conn, stream.name, org_code, event_id))
    if found is None:
        err.print(f"no receipt for {endpoint} {org_code} {event_id}: not applied yet, or never received")
        raise typer.Exit(1)
    print(orjson.dumps(found.as_dict(endpoint), option=orjson.OPT_INDENT_2).decode())


@app.command("rebuild-rollups")
def rebuild_rollups_command() -> None:
    """Recompute every rollup from the raw events (after a metric change, or to verify the live path)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from services.aggregator.rebuild import raw_event_count, rebuild_rollups

    zone_name = _settings().timezone

    async def run(conn: Connection) -> int:
        total = await raw_event_count(conn)
        with Progress(
            TextColumn("rebuilding rollups"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("rebuild", total=total)
            done = await rebuild_rollups(conn, zone_name, lambda n: bar.update(task, completed=n))
            bar.update(task, completed=done)
        return done

    folded = _with_db(run)
    console.print(f"rollups rebuilt from {folded:,} raw events in {zone_name}")


@app.command("wait-applied")
def wait_applied(
    timeout_s: Annotated[float, typer.Option(help="give up after this long")] = 120.0,
    group: Annotated[
        str,
        typer.Option(
            envvar="TELEMETRY_CONSUMER_GROUP", help="the aggregators' consumer group (TELEMETRY_CONSUMER_GROUP)"
        ),
    ] = DEFAULT_CONSUMER_GROUP,
) -> None:
    """Wait until the aggregator has applied everything on the events topic (with progress)."""
    from services.cli.progress import wait_until_applied

    settings = _settings()
    ok = asyncio.run(wait_until_applied(settings, console, timeout_s, group))
    if not ok:
        _fail(f"the aggregator did not catch up within {timeout_s:.0f} s; see its log")


def main() -> None:
    """Entry point of the `telemetry` command."""
    try:
        app()
    except (OSError, asyncpg.PostgresError) as exc:
        err.print(f"[bold red]error:[/] cannot reach the database: {exc}")
        sys.exit(2)
