"""What `telemetry send` shows: a progress bar while it posts, and the counts at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from services.send.outcome import Tally, exit_code
from services.send.poster import SendReport


class _RateColumn(ProgressColumn):
    """Events settled (accepted or refused) per second since the start.

    Not rich's own speed, which needs samples from a live display and is empty where standard
    error is not a terminal (a log, CI).
    """

    def render(self, task: Task) -> Text:
        """The average speed as events/s."""
        elapsed = task.finished_time or task.elapsed
        speed = task.completed / elapsed if elapsed else 0.0
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="progress.data.speed")


@contextmanager
def progress_bar(console: Console, lines: int, *, enabled: bool) -> Iterator[Callable[[Tally], None]]:
    """A bar of events settled out of the files' `lines` (an upper bound), with accepted, refused and
    retries; yields the callback that moves it."""
    bar = Progress(
        TextColumn("[bold]send"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("accepted [green]{task.fields[accepted]:,}[/]  refused [red]{task.fields[refused]:,}[/]"),
        TextColumn("retries {task.fields[retries]:,}"),
        _RateColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )
    task = bar.add_task("send", total=lines, accepted=0, refused=0, retries=0)
    last = Tally()

    def moved(total: Tally) -> None:
        last.read, last.accepted, last.refused = total.read, total.accepted, total.refused
        bar.update(
            task,
            completed=total.accepted + total.refused,
            accepted=total.accepted,
            refused=total.refused,
            retries=total.retries,
        )

    with bar:
        yield moved
        # The lines were an upper bound (a header, blank lines): end on what was read.
        bar.update(task, total=last.read)


def summary(console: Console, report: SendReport) -> None:
    """One line per file and one for the run: accepted, refused (and where they are written), unsent."""
    for run in report.files:
        tally, source = run.tally, run.source
        line = (
            f"{escape(str(source.path))} ({source.stream.name} → {source.stream.path}): "
            f"[green]{tally.accepted:,} accepted[/], "
            + (
                f"[red]{tally.refused:,} refused[/] → {escape(str(run.refused_file.path))}"
                if tally.refused
                else "0 refused"
            )
            + (f", [yellow]{tally.unsent:,} not acknowledged[/]" if tally.unsent else "")
        )
        console.print(line)
        for note in tally.notes:
            console.print(f"    {escape(note)}")
        if tally.failure:
            console.print(f"    [red]not read to its end:[/] {escape(tally.failure)}")
    total = report.total
    rate = total.read / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"total: {total.accepted:,} accepted, {total.refused:,} refused, {total.unsent:,} not acknowledged "
        f"({total.requests:,} requests, {total.retries:,} retries, {report.seconds:.1f} s, {rate:,.0f} events/s)"
    )
    if report.stopped:
        console.print(f"[red]stopped:[/] {escape(report.stopped)}")
    if report.stopped or total.unsent:
        console.print("send the same files again: events already counted count once")


def exit_code_of(report: SendReport) -> int:
    """The command's exit code (`outcome.exit_code`)."""
    return exit_code([run.tally for run in report.files], report.stopped is not None)
