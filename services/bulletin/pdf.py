"""Print the bulletin page with Debian's headless Chromium: a PDF for readers, a PNG for tests and eyes.

Each run gets a fresh temporary folder holding the page, the output and a throw-away profile
(`--user-data-dir`), so runs never share state and leave nothing behind. Chromium runs in its
own session: on a timeout the whole process group it started (renderer, GPU and zygote
processes included) is killed, never just the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from services.bulletin.errors import ChromiumFailedError, ChromiumNotFoundError

log = logging.getLogger(__name__)

# Flags for an unattended, offline, reproducible run. --no-sandbox: the services and CI run as
# root, where Chromium's sandbox refuses to start. The network-related ones keep Chromium from
# calling home; the page itself may load nothing (its Content-Security-Policy says so).
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
)


def find_chromium(name: str) -> str:
    """The absolute path of the Chromium binary `name` (a name on PATH or a path)."""
    path = shutil.which(name)
    if path is None:
        raise ChromiumNotFoundError(
            f"{name!r} not found: install Debian's chromium and fonts-noto-cjk (deploy/local/fonts.sh) "
            "or set TELEMETRY_BULLETIN_CHROMIUM"
        )
    return path


async def print_pdf(html: str, *, chromium: str, timeout_s: float) -> bytes:
    """The page printed to PDF (A4, the page's own @page rules, no header or footer lines)."""
    return await _run(html, chromium, timeout_s, "bulletin.pdf", ["--no-pdf-header-footer", "--print-to-pdf={out}"])


async def screenshot_png(html: str, *, chromium: str, timeout_s: float, width: int = 1280, height: int = 2400) -> bytes:
    """A PNG of the page's first `width` x `height` CSS pixels, as a reader's screen shows it."""
    return await _run(
        html, chromium, timeout_s, "bulletin.png", [f"--window-size={width},{height}", "--screenshot={out}"]
    )


async def _run(html: str, chromium: str, timeout_s: float, out_name: str, flags: list[str]) -> bytes:
    binary = find_chromium(chromium)
    with tempfile.TemporaryDirectory(prefix="bulletin-") as tmp:
        folder = Path(tmp)
        page = folder / "bulletin.html"
        page.write_text(html, encoding="utf-8")
        out = folder / out_name
        args = [
            *BASE_FLAGS,
            f"--user-data-dir={folder / 'profile'}",
            f"--crash-dumps-dir={folder / 'crashes'}",
            *(flag.format(out=out) for flag in flags),
            page.as_uri(),
        ]
        # HOME inside the folder: Chromium also writes caches and fontconfig state under it.
        env = {**os.environ, "HOME": str(folder)}
        proc = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError as exc:
            _kill_group(proc.pid)
            await proc.wait()
            raise ChromiumFailedError(f"chromium did not finish within {timeout_s:.0f} s", retriable=True) from exc
        finally:
            # Chromium's helper processes can outlive the browser process briefly; they are ours.
            _kill_group(proc.pid)
        tail = output.decode("utf-8", "replace")[-2000:]
        if proc.returncode != 0:
            raise ChromiumFailedError(f"chromium exited with {proc.returncode}: {tail}", retriable=False)
        if not out.exists() or out.stat().st_size == 0:
            raise ChromiumFailedError(f"chromium wrote no {out_name}: {tail}", retriable=False)
        log.debug("chromium rendered %s (%d bytes)", out_name, out.stat().st_size)
        return out.read_bytes()


def _kill_group(pid: int) -> None:
    # The group id is the pid of the Chromium we started (start_new_session), so this reaches
    # only processes of this run.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
