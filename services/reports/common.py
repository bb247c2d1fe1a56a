"""Months, rates and CSV: what every report computes or writes the same way."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from pydantic import BaseModel

RATE_DIGITS = 6


def next_month(month: date) -> date:
    """First day of the month after `month`."""
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def rate(numerator: int, denominator: int) -> float | None:
    """A report's rate: rounded to RATE_DIGITS, None when the denominator is 0."""
    return round(numerator / denominator, RATE_DIGITS) if denominator > 0 else None


def to_csv(model: type[BaseModel], rows: Sequence[BaseModel]) -> str:
    """CSV with a header row of the report's fields; empty cells for nulls, exact decimals."""
    buffer = io.StringIO()
    fields = list(model.model_fields)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        values = []
        for name in fields:
            value = getattr(row, name)
            if value is None:
                values.append("")
            elif isinstance(value, Decimal):
                values.append(f"{value:.2f}")
            elif hasattr(value, "value"):
                values.append(value.value)
            else:
                values.append(value)
        writer.writerow(values)
    return buffer.getvalue()
