"""The kiosk report: the monthly sums per institution (pure) and the query that feeds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.contract.models import InstitutionKind
from services.reports.reference import ReferenceView, load_reference_view
from services.storage.connection import Connection
from services.streams.kiosk.fold import KIOSK_MONTHLY
from services.streams.kiosk.model import KioskKind, KioskReportRow
from services.streams.rollups import Deltas


@dataclass
class KioskInputs:
    """One institution's kiosk sums for a month."""

    registrations: int = 0
    registration_amount: Decimal = Decimal("0.00")
    payments: int = 0
    payment_amount: Decimal = Decimal("0.00")


def kiosk_report(inputs: Mapping[str, KioskInputs], ref: ReferenceView) -> list[KioskReportRow]:
    """One row per institution, hospitals then districts, each by kiosks, most first; then the total."""
    rows: list[KioskReportRow] = []
    for kind in (InstitutionKind.HOSPITAL, InstitutionKind.DISTRICT):
        group = []
        for inst in ref.institutions:
            if inst.kind is not kind:
                continue
            got = inputs.get(inst.org_code, KioskInputs())
            group.append(
                KioskReportRow(
                    group=kind.value,
                    org_code=inst.org_code,
                    name=inst.name,
                    kiosks=ref.kiosks.get(inst.org_code, 0),
                    registrations=got.registrations,
                    registration_amount=got.registration_amount,
                    payments=got.payments,
                    payment_amount=got.payment_amount,
                )
            )
        group.sort(key=lambda r: (-r.kiosks, -r.registrations, r.org_code or ""))
        rows.extend(group)
    rows.append(
        KioskReportRow(
            group="total",
            org_code=None,
            name="合计 Total",
            kiosks=sum(r.kiosks for r in rows),
            registrations=sum(r.registrations for r in rows),
            registration_amount=sum((r.registration_amount for r in rows), Decimal("0.00")),
            payments=sum(r.payments for r in rows),
            payment_amount=sum((r.payment_amount for r in rows), Decimal("0.00")),
        )
    )
    return rows


def _add(inputs: dict[str, KioskInputs], org: str, kind: str, transactions: int, amount: Decimal) -> None:
    got = inputs.setdefault(org, KioskInputs())
    if kind == KioskKind.REGISTRATION:
        got.registrations += transactions
        got.registration_amount += amount
    else:
        got.payments += transactions
        got.payment_amount += amount


def kiosk_inputs_from_deltas(deltas: Deltas, month: date) -> dict[str, KioskInputs]:
    """Kiosk inputs computed in memory from folded events (the rollup rows before they are stored)."""
    out: dict[str, KioskInputs] = {}
    for (org, kiosk_month, kind), (transactions, amount) in deltas.tables.get(KIOSK_MONTHLY.name, {}).items():
        if kiosk_month == month:
            _add(out, org, kind, transactions, amount)
    return out


async def kiosks_report(conn: Connection, month: date, org_code: str | None) -> list[KioskReportRow]:
    """`GET /v1/reports/kiosks`: per institution, hospitals then districts, and a total row."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ref = await load_reference_view(conn, org_code)
        rows = await conn.fetch(
            "SELECT org_code, kind, transactions, amount FROM kiosk_monthly WHERE month = $1", month
        )
    inputs: dict[str, KioskInputs] = {}
    for row in rows:
        _add(inputs, row["org_code"], row["kind"], row["transactions"], row["amount"])
    return kiosk_report(inputs, ref)
