"""The dashboard in real headless Chromium (Debian's package, driven by Playwright): sign in, charts with
data, filters, CSV export, a job with its pictures, a ban, live refresh, and a prompt drawn by an
in-process generator on the tiny checkpoint. Screenshots go to artifacts/screenshots/ (not committed)."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from bot.web.app import create_app
from bot.web.config import DashboardConfig
from jobs import errors
from jobs.db import connect
from jobs.models import EnqueueRequest, Job
from jobs.queue import Queue
from jobs.settings import Settings
from tests.web.browser import chromium, fresh_page, require_browser, screenshot
from tests.web.data import WEB_LIMITS, WORKER, png
from tests.web.helpers import PASSWORD

# One Chromium for the module, so every test and fixture here runs on the module's event loop.
pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    require_browser()
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def queue(db_url: str) -> AsyncIterator[Queue]:
    """The conftest's queue, opened on the module's loop (an engine serves the loop it was made on)."""
    engine = connect(db_url)
    yield Queue(engine=engine, limits=WEB_LIMITS)
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="module")
async def base_url(
    browser: Any, settings: Settings, queue: Queue, dashboard_config: DashboardConfig
) -> AsyncIterator[str]:
    server = TestServer(create_app(settings=settings, queue=queue, config=dashboard_config), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any, base_url: str) -> AsyncIterator[Any]:
    async with fresh_page(browser) as browser_page:
        yield browser_page


async def sign_in(page: Any, base_url: str, path: str = "/") -> None:
    await page.goto(base_url + path)
    assert "/login" in page.url
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)


async def all_pictures_decoded(page: Any, timeout: float = 10.0) -> list[int]:
    """The natural widths of the page's images once all have loaded (0 would mean a broken image)."""
    script = "els => els.map(e => e.complete ? e.naturalWidth : -1)"
    async with asyncio.timeout(timeout):
        while True:
            widths = await page.locator("img").evaluate_all(script)
            if all(width != -1 for width in widths):
                assert all(width > 0 for width in widths), f"broken images: {widths}"
                return widths
            await asyncio.sleep(0.05)


async def test_sign_in_chart_filter_and_csv(
    page: Any, base_url: str, queue: Queue, history: dict[str, Job]
) -> None:
    await page.goto(base_url + "/login")
    await page.fill("#password", "wrong")
    await page.click("button[type=submit]")
    assert await page.inner_text(".flash.error") == "Wrong password."
    await screenshot(page, "01-sign-in")
    await sign_in(page, base_url)

    bars = page.locator("#chart-volume svg rect.bar")
    assert await bars.count() == 60  # 30 days × (jobs, images)
    values = [float(v) for v in await bars.evaluate_all("els => els.map(e => e.dataset.value)")]
    assert sum(values[:30]) == 8  # jobs per day add up to every job
    box = await page.locator("#chart-volume svg").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, at a readable size
    assert await page.inner_text('[data-total="jobs"]') == "8"
    await screenshot(page, "02-usage")

    await page.select_option("#platform", "slack")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(lambda url: "platform=slack" in url)
    assert await page.inner_text('[data-total="jobs"]') == "2"
    assert await page.inner_text('[data-total="images"]') == "6"

    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    download = await download_info.value
    assert download.suggested_filename.startswith("imagine-usage-")
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    assert [r["prompt"] for r in rows] == ["a paper boat on a lake", "a city of glass at night"]
    assert {r["platform"] for r in rows} == {"slack"}


async def test_history_search_and_job_pictures(
    page: Any, base_url: str, queue: Queue, history: dict[str, Job]
) -> None:
    await sign_in(page, base_url, "/history")
    assert await page.locator("table.jobs tbody tr").count() == 8
    await screenshot(page, "03-history")
    await page.fill("#q", "boat")
    await page.click("form.filters button[type=submit]")
    assert await page.locator("table.jobs tbody tr").count() == 1
    await page.click("text=a paper boat on a lake")
    await page.wait_for_url(f"**/jobs/{history['boat'].id}")
    pictures = page.locator(".images img")
    assert await pictures.count() == 4
    grid = page.locator("img.grid-image")
    await grid.wait_for()
    # every picture decoded from the database's PNG bytes (naturalWidth is 0 for a broken image)
    assert await all_pictures_decoded(page) == [192, 64, 64, 64, 64]  # the 3 x 2 grid, then the 4 pictures
    await screenshot(page, "04-job")

    await page.click("text=Delete pictures")  # the confirm dialog is accepted
    await page.wait_for_selector(".flash.ok")
    assert "usage record is kept" in await page.inner_text(".flash.ok")
    assert await page.locator(".images img").count() == 0
    assert (await queue.get_job(history["boat"].id)).status.value == "done"


async def test_ban_a_user(page: Any, base_url: str, queue: Queue, history: dict[str, Job]) -> None:
    await sign_in(page, base_url, "/moderation")
    await page.select_option("#ban-platform", "discord")
    await page.fill("#ban-user", "bob")
    await page.fill("#ban-reason", "posting spam prompts")
    await page.click("#ban button[type=submit]")
    await page.wait_for_selector(".flash.ok")
    assert await page.inner_text(".flash.ok") == "Banned discord user bob in all of discord."
    assert "posting spam prompts" in await page.inner_text("#bans")
    with pytest.raises(errors.Banned):
        await queue.enqueue(EnqueueRequest(platform="discord", user_id="bob", guild_id="g1", prompt="a fox"))
    await page.goto(base_url + "/moderation?platform=discord&guild=g1")
    await page.fill("#blocked_words", "gore\nblood")
    await page.fill("#max_queued_per_user", "3")
    await page.click(".space-form button[type=submit]")
    await page.wait_for_selector(".flash.ok")
    await screenshot(page, "05-moderation")
    assert (await queue.get_settings("discord", "g1")).blocked_words == ("gore", "blood")


async def test_live_page_refreshes_without_reload(
    page: Any, base_url: str, queue: Queue, history: dict[str, Job]
) -> None:
    await queue.worker_heartbeat(WORKER, device="cuda:0", model="dalle-mini/dalle-mini", batch_images=8)
    await sign_in(page, base_url, "/live")
    assert await page.inner_text("#stat-queued") == "0"
    await page.evaluate("window.__sameDocument = true")
    for user in ("dora", "dora", "eve"):
        await queue.enqueue(
            EnqueueRequest(
                platform="discord",
                user_id=user,
                user_name=user.title(),
                guild_id="g5",
                prompt=f"a {user} garden",
            )
        )
    running = await queue.claim(WORKER, max_images=4)
    await queue.heartbeat([job.id for job in running], WORKER, 0.6)
    from playwright.async_api import expect

    # wait_for_function would need eval, which the dashboard's CSP (rightly) refuses: poll via selectors
    await expect(page.locator("#stat-queued")).to_have_text("2", timeout=10_000)
    assert await page.evaluate("window.__sameDocument") is True  # refreshed in place, not reloaded
    assert await page.inner_text("#stat-running") == "1"
    assert "Dora" in await page.inner_text('[data-live-section="by-user"]')
    assert "cuda:0" in await page.inner_text('[data-live-section="workers"]')
    await screenshot(page, "06-live")


GENERATOR_AVAILABLE = (
    importlib.util.find_spec("torch") is not None
    and importlib.util.find_spec("generator.testing") is not None
)


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def tiny_model(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[asyncio.Task[Any] | None]:
    """The tiny checkpoint's model, loading in a thread from the module's start (importing torch and
    loading take seconds) while the other browser tests run; None where torch/generator are missing."""
    if not GENERATOR_AVAILABLE:
        yield None
        return

    def load() -> Any:
        from generator.model.dalle import DalleMini
        from generator.testing import make_tiny_checkpoints

        return DalleMini.load(*make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"), seed=0))

    task = asyncio.create_task(asyncio.to_thread(load), name="load-tiny-model")
    yield task
    await task  # a thread cannot be cancelled: let it finish before the loop closes


@pytest_asyncio.fixture(loop_scope="module")
async def generator(queue: Queue, tiny_model: asyncio.Task[Any] | None) -> AsyncIterator[bool]:
    """An in-process generator (real render loop and worker) on the tiny checkpoint, or False where
    torch/generator are missing."""
    if tiny_model is None:
        yield False
        return
    from generator.engine import ModelEngine
    from generator.scheduler import RenderLoop
    from generator.worker import Worker

    engine = ModelEngine(await tiny_model, capacity=4, model_name="tiny")
    render = RenderLoop(
        queue=queue, engine=engine, worker_id="tiny-cpu",
        claim_interval_seconds=0.05, busy_poll_seconds=0.05, idle_poll_seconds=0.1, progress_seconds=0.1,
    )  # fmt: skip
    worker = Worker(
        queue=queue, worker_id="tiny-cpu", render=render, deliverer=None, device="cpu", model="tiny",
        registry_seconds=0.5,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="generator-under-test")
    try:
        yield True
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_try_a_prompt_and_watch_it_finish(
    page: Any, base_url: str, queue: Queue, generator: bool
) -> None:
    await sign_in(page, base_url, "/try")
    await page.fill("#prompt", "a small red boat on a calm lake")
    await page.fill("#images", "2")
    await page.fill("#seed", "11")
    await screenshot(page, "07-try")
    await page.click("#try-form button[type=submit]")
    await page.wait_for_url("**/jobs/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    assert "Queued as job" in await page.inner_text(".flash.ok")
    job = await queue.get_job(job_id)
    assert (job.platform, job.options.images, job.options.seed) == ("web", 2, 11)
    if not generator:
        # No model here: stand in for the generator through the queue's own claim + finish.
        assert await page.locator(".badge.queued").count() == 1
        [claimed] = await queue.claim("stand-in", max_images=4)
        await queue.finish(
            claimed.id,
            "stand-in",
            grid_png=png((20, 90, 160), 64),
            images=[(png((200, 80, 40), 32), bytes(512))] * 2,
            gpu_seconds=0.5,
        )
    await page.wait_for_selector("img.grid-image", timeout=30_000)  # live refresh shows the pictures
    assert await page.locator(".badge.done").count() == 1
    await all_pictures_decoded(page)
    assert await page.locator(".images img").count() == 2
    assert await page.get_attribute("[data-live-url]", "data-live-final") == "true"  # polling stopped
    await screenshot(page, "08-try-finished")
    finished = await queue.get_job(job_id)
    assert finished.status.value == "done" and finished.finished_at is not None
    assert finished.finished_at <= datetime.now(UTC)
