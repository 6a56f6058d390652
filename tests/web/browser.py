"""Real headless Chromium for the dashboard's browser tests (Debian's `chromium`, driven by Playwright).

Never `playwright install`: the browser is the distribution's, found at CHROMIUM. Outside CI a missing
browser or package skips the tests with the reason; under CI=true it fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("IMAGINE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# IMAGINE_TEST_SCREENSHOTS moves them (default artifacts/screenshots/, not committed)
_DEFAULT_SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SCREENSHOTS = Path(os.environ.get("IMAGINE_TEST_SCREENSHOTS", _DEFAULT_SCREENSHOTS))
INSTALL_HINT = "apt-get install -y chromium && .venv/bin/pip install -e '.[dev]'"


def browser_problem() -> str | None:
    """Why browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"the playwright package is not installed ({INSTALL_HINT})"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} ({INSTALL_HINT})"
    return None


def require_browser() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run under CI: {problem}")
    pytest.skip(problem)


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """One headless Chromium (launching takes a second or more: tests share it, each with its own context)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def fresh_page(browser: Any, *, width: int = 1280, height: int = 860) -> AsyncIterator[Any]:
    """A page in a new context (no cookies from other tests); dialogs (confirm) are accepted, and script
    errors or CSP violations the page logs fail the test."""
    context = await browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # Script errors and CSP violations; a non-2xx answer (a refused sign-in is a 401) is not one.
        page.on(
            "console",
            lambda message: (
                errors.append(message.text)
                if message.type == "error" and not message.text.startswith("Failed to load resource")
                else None
            ),
        )
        yield page
        assert not errors, f"the page logged errors: {errors}"
    finally:
        await context.close()


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.evaluate("window.scrollTo(0, 0)")  # else the sticky header is drawn mid-page
    await page.screenshot(path=str(path), full_page=True)
    return path
