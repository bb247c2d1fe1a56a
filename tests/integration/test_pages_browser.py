"""The institution pages in headless Chromium: they render for an institution and for the admin, a
screenshot of each is kept (`.artifacts/pages/`, git-ignored; the path is printed), and a basic
accessibility check passes: every input labelled, every graphic named, every text colour against
its background at 4.5:1 or more (computed here from Chromium's computed styles), and the keyboard
reaches every link, button and field in document order, starting with a skip link.

The aggregator runs under uvicorn on a loopback port (a browser needs a real socket), consuming
this test's topic into this test's database; the month is posted through the collector.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from services.aggregator.app import create_app
from tests.fixtures.chromium import Page, chromium_page
from tests.fixtures.pages import D1_NAME, D2_NAME, contrast_ratio, seed_month
from tests.fixtures.stack import ADMIN_TOKEN, REPO, WAIT_S, StackConfig, free_port

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / ".artifacts" / "pages"
MINIMUM_CONTRAST = 4.5  # WCAG 2.x AA, normal text

# What the page has, read in the browser; the judging is done in Python below.
_AUDIT = """(() => {
  const describe = (el) => el.outerHTML.slice(0, 160);
  const out = {unlabelled: [], unnamed: [], positiveTabindex: [], pairs: []};
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const byLabel = [...(el.labels || [])].some((label) => label.textContent.trim() !== '');
    const named = byLabel || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!named) out.unlabelled.push(describe(el));
  }
  for (const el of document.querySelectorAll('img')) if (!el.getAttribute('alt')) out.unnamed.push(describe(el));
  for (const el of document.querySelectorAll('svg')) {
    if (el.parentElement.closest('svg') || el.getAttribute('aria-hidden') === 'true') continue;
    const title = el.querySelector(':scope > title');
    if (!(title && title.textContent.trim()) && !el.getAttribute('aria-label')) out.unnamed.push(describe(el));
  }
  for (const el of document.querySelectorAll('[tabindex]')) {
    if (parseInt(el.getAttribute('tabindex'), 10) > 0) out.positiveTabindex.push(describe(el));
  }
  const transparent = (c) => c === 'transparent' || /^rgba\\(.*,\\s*0\\)$/.test(c);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (!transparent(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (el.closest('svg')) continue;
    out.pairs.push({fg: getComputedStyle(el).color, bg: background(el), text: node.textContent.trim().slice(0, 40)});
  }
  for (const text of document.querySelectorAll('svg text')) {
    const group = text.parentElement.closest('g');
    const rect = group ? group.querySelector('rect') : null;
    const bg = rect ? getComputedStyle(rect).fill : background(text.closest('svg'));
    out.pairs.push({fg: getComputedStyle(text).fill, bg: bg, text: 'svg: ' + text.textContent});
  }
  return out;
})()"""

# Numbers every element a keyboard user must reach, in document order.
_FOCUSABLE = """(() => {
  const all = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')]
    .filter((el) => el.getClientRects().length > 0 && !el.disabled);
  all.forEach((el, i) => { el.dataset.k = String(i); });
  return all.map((el) => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
})()"""


@asynccontextmanager
async def served(config: StackConfig) -> AsyncIterator[str]:
    """The aggregator under uvicorn on a free loopback port; its base URL."""
    port = free_port()
    app = create_app(config.aggregator_settings(), CollectorRegistry())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(int(WAIT_S / 0.05)):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


def _rgb(css: str) -> tuple[int, int, int]:
    numbers = [int(float(n)) for n in re.findall(r"[\d.]+", css)[:3]]
    assert len(numbers) == 3, css
    return numbers[0], numbers[1], numbers[2]


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two CSS colours as Chromium computes them (`rgb(r, g, b)`)."""
    return contrast_ratio(_rgb(fg), _rgb(bg))


async def check_accessibility(page: Page) -> None:
    """Labels, names of graphics, contrast, and the keyboard: the page's basic accessibility."""
    audit: dict[str, Any] = await page.evaluate(_AUDIT)
    assert audit["unlabelled"] == [], audit["unlabelled"]
    assert audit["unnamed"] == [], audit["unnamed"]
    assert audit["positiveTabindex"] == [], audit["positiveTabindex"]
    assert audit["pairs"], "no text found on the page"
    low = [(p["text"], p["fg"], p["bg"], round(contrast(p["fg"], p["bg"]), 2)) for p in audit["pairs"]]
    assert [x for x in low if x[3] < MINIMUM_CONTRAST] == []
    # The keyboard: Tab from the top visits the skip link first, then every focusable element in order.
    focusable: list[str] = await page.evaluate(_FOCUSABLE)
    assert focusable and focusable[0] == "a.skip", focusable
    await page.evaluate("document.activeElement.blur()")
    visited: list[int] = []
    # A month field takes a Tab per part (year, month): the same element twice in a row counts once.
    for _ in range(2 * len(focusable) + 5):
        await page.press("Tab")
        index = await page.evaluate("document.activeElement.dataset.k")
        if index is None or (visited and int(index) == visited[0]):
            break
        if not visited or int(index) != visited[-1]:
            visited.append(int(index))
    assert visited == list(range(len(focusable))), (visited, focusable)
    # The skip link moves the focus to the content.
    await page.evaluate("document.activeElement.blur()")
    await page.press("Tab")
    await page.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"


async def sign_in(page: Page, base: str, token: str) -> None:
    """Type the token into the sign-in form and press Enter, as a person does."""
    await page.goto(f"{base}/")
    await check_accessibility(page)
    await page.evaluate("document.getElementById('token').focus()")
    await page.type_text(token)
    await page.press_enter_and_wait()


def keep(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Say where a screenshot was kept (printed past pytest's capture)."""
    assert path.stat().st_size > 10_000, f"{path} is too small to show the page"
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


async def test_the_institution_page_in_chromium(
    stack_config: StackConfig,
    collector: httpx.AsyncClient,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with served(stack_config) as base:
        tokens = await seed_month(collector, db)
        async with chromium_page() as page:
            await sign_in(page, base, tokens["D1"])
            assert re.fullmatch(rf"{base}/institutions/D1\?month=\d{{4}}-\d{{2}}", await page.evaluate("location.href"))
            # The session cookie is HttpOnly: the page's own scripts cannot read it.
            assert "telemetry_session" not in await page.evaluate("document.cookie")
            await page.goto(f"{base}/institutions/D1?month=2020-04")
            assert D1_NAME in await page.evaluate("document.querySelector('h1').textContent")
            assert await page.evaluate("document.querySelectorAll('svg.heatmap').length") == 2
            assert await page.evaluate("document.querySelectorAll('svg.heatmap g.day').length") == 60
            assert D2_NAME not in await page.evaluate("document.body.innerText")
            keep(await page.screenshot(ARTIFACTS / "institution-D1-2020-04.png"), capsys)
            await check_accessibility(page)
            # Another institution's page, in the same browser: refused.
            await page.goto(f"{base}/institutions/D2?month=2020-04")
            text = await page.evaluate("document.body.innerText")
            assert "无权查看" in text and D2_NAME not in text


async def test_the_admin_page_in_chromium(
    stack_config: StackConfig,
    collector: httpx.AsyncClient,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with served(stack_config) as base:
        await seed_month(collector, db)
        async with chromium_page() as page:
            await sign_in(page, base, ADMIN_TOKEN)
            assert await page.evaluate("location.pathname") == "/"
            await page.goto(f"{base}/?month=2020-04")
            links = await page.evaluate("[...document.querySelectorAll('main a')].map((a) => a.textContent)")
            assert {D1_NAME, D2_NAME, "丙医院"} <= set(links)
            keep(await page.screenshot(ARTIFACTS / "admin-2020-04.png"), capsys)
            await check_accessibility(page)
            # Signing out through the page's own form ends the session.
            await page.evaluate("document.querySelector('form[action=\"/signout\"] button').focus()")
            await page.press_enter_and_wait()
            await page.goto(f"{base}/institutions/D1?month=2020-04")
            assert await page.evaluate("location.pathname") == "/"
            assert await page.evaluate("document.getElementById('token') !== null")
