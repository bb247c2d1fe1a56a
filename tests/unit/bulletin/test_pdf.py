"""Running Chromium: the flags, a fresh profile per run, errors that say whether to retry, no process left.

A stand-in script plays Chromium here (the real one is exercised by the integration tests), so
these run anywhere and can make Chromium hang or fail on purpose.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from services.bulletin import pdf
from services.bulletin.errors import ChromiumFailedError, ChromiumNotFoundError
from tests.fixtures.stack import wait_for


def fake_chromium(tmp_path: Path, body: str) -> str:
    """An executable that records its arguments in args.txt, then runs `body` (sh)."""
    script = tmp_path / "fake-chromium"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/args.txt"\n{body}\n', encoding="utf-8")
    script.chmod(0o755)
    return str(script)


WRITE_OUTPUT = """for a in "$@"; do
  case "$a" in --print-to-pdf=*) printf '%%PDF-1.4 fake' > "${a#--print-to-pdf=}";;
               --screenshot=*) printf 'PNG' > "${a#--screenshot=}";; esac
done"""


async def test_the_pdf_comes_from_a_fresh_profile_with_the_offline_flags(tmp_path: Path) -> None:
    binary = fake_chromium(tmp_path, WRITE_OUTPUT)
    assert await pdf.print_pdf("<p>甲</p>", chromium=binary, timeout_s=10) == b"%PDF-1.4 fake"
    args = (tmp_path / "args.txt").read_text(encoding="utf-8").split("\n")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-pdf-header-footer",
    ):
        assert flag in args
    profile = next(a for a in args if a.startswith("--user-data-dir="))
    assert args[-2].startswith("file://") and args[-2].endswith("/bulletin.html")
    assert not Path(profile.partition("=")[2]).parent.exists()  # the run's folder is gone afterwards

    await pdf.print_pdf("<p>乙</p>", chromium=binary, timeout_s=10)
    second = (tmp_path / "args.txt").read_text(encoding="utf-8").split("\n")
    assert next(a for a in second if a.startswith("--user-data-dir=")) != profile


async def test_a_screenshot_has_the_window_size(tmp_path: Path) -> None:
    binary = fake_chromium(tmp_path, WRITE_OUTPUT)
    assert await pdf.screenshot_png("<p/>", chromium=binary, timeout_s=10, width=800, height=600) == b"PNG"
    assert "--window-size=800,600" in (tmp_path / "args.txt").read_text(encoding="utf-8").split("\n")


async def test_a_missing_chromium_says_how_to_install_it() -> None:
    with pytest.raises(ChromiumNotFoundError, match=r"fonts\.sh"):
        await pdf.print_pdf("<p/>", chromium="no-such-chromium-here", timeout_s=10)


async def test_an_exit_with_an_error_is_not_retriable_and_shows_the_output(tmp_path: Path) -> None:
    binary = fake_chromium(tmp_path, "echo 'cannot open display' >&2; exit 3")
    with pytest.raises(ChromiumFailedError, match="exited with 3: cannot open display") as caught:
        await pdf.print_pdf("<p/>", chromium=binary, timeout_s=10)
    assert caught.value.retriable is False


async def test_no_output_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ChromiumFailedError, match=r"wrote no bulletin\.pdf"):
        await pdf.print_pdf("<p/>", chromium=fake_chromium(tmp_path, "exit 0"), timeout_s=10)


async def test_a_hang_is_retriable_and_kills_every_process_of_the_run(tmp_path: Path) -> None:
    # The stand-in starts a helper (as Chromium starts renderers) and both hang.
    body = f'sleep 60 & echo $! > "{tmp_path}/helper.pid"\nsleep 60'
    started = time.monotonic()
    with pytest.raises(ChromiumFailedError, match="did not finish") as caught:
        await pdf.print_pdf("<p/>", chromium=fake_chromium(tmp_path, body), timeout_s=0.5)
    assert caught.value.retriable is True
    assert time.monotonic() - started < 10
    helper = int((tmp_path / "helper.pid").read_text(encoding="utf-8"))

    async def gone() -> bool:
        return not _alive(helper)

    await wait_for(gone, "the helper process killed with the run", timeout_s=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a dead parent may linger as a zombie until init reaps it: that is not alive.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text(encoding="utf-8").split(") ", 1)[1][0] != "Z"
