"""The whole April 2020 demo month: every stream, merged in arrival order.

`plan_demo_month(seed)` decides every stream of the month (uploads and kiosk transactions,
`month.py`; appointments, `appointments.py`; hotline contacts, `hotline.py`; remote-platform
uploads, `remote.py`) and `DemoMonth.events(kinds)` writes the chosen ones as `(kind, event)`
pairs in arrival order, merged one event at a time, so the month (about 2.6 million events)
is never held in memory. `V1_KINDS` are the streams the platform has endpoints for today;
the replay posts only those unless told otherwise.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from services.demo.appointments import plan_appointments
from services.demo.bulletin import Bulletin, load_bulletin
from services.demo.daily import CountStreamPlan
from services.demo.hotline import plan_hotline
from services.demo.month import DEFAULT_SEED, MonthPlan, plan_month
from services.demo.remote import plan_remote

KINDS = ("upload", "kiosk", "appointment", "hotline_contact", "remote_upload")
"""Every stream of the demo month, by the kind its events carry."""
V1_KINDS = ("upload", "kiosk")
"""The streams of contract v1 (the ones with endpoints on the platform today)."""

Item = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class DemoMonth:
    """Every stream of the April 2020 demo month, decided; `events(kinds)` writes them."""

    seed: int
    month: MonthPlan
    """Uploads and kiosk transactions (and the reference set they were planned on)."""
    appointments: CountStreamPlan
    hotline: CountStreamPlan
    remote: CountStreamPlan

    def _counted(self) -> Mapping[str, CountStreamPlan]:
        return {p.kind: p for p in (self.appointments, self.hotline, self.remote)}

    def total_events(self, kinds: Collection[str] = KINDS) -> int:
        """Events `events(kinds)` yields, duplicates included."""
        _check(kinds)
        total = sum(p.total_events for kind, p in self._counted().items() if kind in kinds)
        if "upload" in kinds:
            total += self.month.upload_events
        if "kiosk" in kinds:
            total += self.month.kiosk_events
        return total

    def events(self, kinds: Collection[str] = KINDS) -> Iterator[Item]:
        """The chosen streams' events in arrival order, written as they are needed."""
        _check(kinds)
        timed: list[Iterator[tuple[int, Any]]] = [p.timed() for kind, p in self._counted().items() if kind in kinds]
        if "upload" in kinds or "kiosk" in kinds:
            wanted = set(kinds)
            timed.insert(0, (pair for pair in self.month.timed() if pair[1][0] in wanted))
        merged = timed[0] if len(timed) == 1 else heapq.merge(*timed, key=itemgetter(0))
        for _, item in merged:
            yield item


def _check(kinds: Collection[str]) -> None:
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {list(KINDS)}, not {sorted(kinds)}")


def plan_demo_month(seed: int = DEFAULT_SEED, bulletin: Bulletin | None = None) -> DemoMonth:
    """Plan every stream of the April 2020 demo month (deterministic for a seed)."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    month = plan_month(seed, bulletin)
    reference = month.reference
    institutions = {i.org_code: i for i in reference.institutions}
    return DemoMonth(
        seed=seed,
        month=month,
        appointments=plan_appointments(bulletin, seed),
        hotline=plan_hotline(bulletin, seed),
        remote=plan_remote(bulletin, reference.connections, institutions, seed),
    )
