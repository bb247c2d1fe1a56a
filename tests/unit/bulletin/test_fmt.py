"""How the bulletin writes figures: exact money, rounded rates, folded day ranges."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.reports import fmt


def test_amounts_are_printed_from_the_exact_decimal() -> None:
    # The printed kiosk total was 185,976,917.60; the rows add up to .64, a float sum loses cents.
    assert fmt.amount(Decimal("185976917.64")) == "185,976,917.64"
    assert fmt.amount(Decimal("12345678901.99")) == "12,345,678,901.99"
    assert fmt.amount(Decimal("0")) == "0.00"


@pytest.mark.parametrize(
    ("rate", "text"), [(0.955, "95.50%"), (0.999995, "100.00%"), (0.4031, "40.31%"), (0.0, "0.00%"), (None, "—")]
)
def test_rates_are_percentages_with_two_decimals(rate: float | None, text: str) -> None:
    assert fmt.rate(rate) == text


def test_declared_cell_writes_no_feedback_as_printed() -> None:
    assert fmt.declared(52, 129) == "52/129"
    assert fmt.declared(None, 83) == "未反馈/83"


def test_day_ranges_fold_consecutive_days() -> None:
    days = [date(2020, 4, d) for d in (3, 1, 2, 5, 30)] + [date(2020, 5, 1), date(2020, 5, 1)]
    assert fmt.day_ranges(days) == ["4月1日–3日（3天）", "4月5日", "4月30日–5月1日（2天）"]
    assert fmt.day_ranges([]) == []
