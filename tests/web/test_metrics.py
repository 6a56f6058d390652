"""`/metrics` as Prometheus reads it: scraped from the dashboard, parsed by prometheus_client's own parser,
before and after jobs go through the queue; the counters and histograms move as the jobs do."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient

from jobs.models import Job
from jobs.queue import Queue
from tests.web.data import WORKER, grid_png, png, request
from tests.web.helpers import scrape, value


async def test_counters_and_histograms_move_with_the_jobs(admin: TestClient, queue: Queue) -> None:
    before = await scrape(admin)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    discord = (await queue.enqueue(request("a boat", "ann", options={"images": 2}), now=t0)).job
    slack = (
        await queue.enqueue(
            request("a tree", "bo", platform="slack", guild_id="T1", options={"images": 1}), now=t0
        )
    ).job
    doomed = (await queue.enqueue(request("a storm", "cy", options={"images": 1}), now=t0)).job
    waiting = await scrape(admin)
    assert (
        value(waiting, "imagine_queue_depth_jobs") == 3 and value(waiting, "imagine_queue_depth_images") == 4
    )

    start = t0 + timedelta(seconds=4)  # every job waited 4 s for the generator
    assert len(await queue.claim(WORKER, max_images=9, now=start)) == 3
    for job, seconds in ((discord, 3.0), (slack, 7.0)):
        pictures = [(png((10 * i, 0, 0)), bytes(512)) for i in range(job.images)]
        await queue.finish(
            job.id,
            WORKER,
            grid_png=grid_png([(0, 0, 0)] * job.images),
            images=pictures,
            gpu_seconds=seconds,
            now=start + timedelta(seconds=seconds),
        )
    await queue.fail(doomed.id, WORKER, reason="out of memory", retryable=False, gpu_seconds=0.5, now=start)
    await queue.mark_delivered(discord.id, now=start + timedelta(seconds=3 + 2))  # posted 2 s after done
    after = await scrape(admin)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "imagine_queue_depth_jobs") == 0 and value(after, "imagine_jobs_running") == 0
    assert moved("imagine_jobs_total", platform="discord", kind="imagine", outcome="done") == 1
    assert moved("imagine_jobs_total", platform="slack", kind="imagine", outcome="done") == 1
    assert moved("imagine_jobs_total", platform="discord", kind="imagine", outcome="failed") == 1
    assert moved("imagine_images_rendered_total", platform="discord") == 2
    assert moved("imagine_images_rendered_total", platform="slack") == 1
    assert moved("imagine_gpu_seconds_total", platform="discord") == 3.5
    assert moved("imagine_gpu_seconds_total", platform="slack") == 7.0
    # render: 3 s and 7 s
    assert moved("imagine_render_seconds_count") == 2 and moved("imagine_render_seconds_sum") == 10.0
    assert moved("imagine_render_seconds_bucket", le="5.0") == 1
    assert moved("imagine_render_seconds_bucket", le="10.0") == 2
    # queue wait: three jobs of 4 s each
    assert moved("imagine_queue_wait_seconds_count") == 3
    assert abs(moved("imagine_queue_wait_seconds_sum") - 12.0) < 0.01
    assert moved("imagine_queue_wait_seconds_bucket", le="2.5") == 0
    assert moved("imagine_queue_wait_seconds_bucket", le="5.0") == 3
    # delivery: one posted 2 s after it finished; the others are still pending
    assert moved("imagine_delivery_seconds_count") == 1
    assert moved("imagine_delivery_seconds_bucket", le="2.5") == 1
    assert moved("imagine_deliveries_total", state="delivered") == 1
    assert value(after, "imagine_deliveries_pending") == 2


async def test_the_grafana_dashboard_queries_only_metrics_we_serve(
    admin: TestClient, history: dict[str, Job]
) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"imagine_\w+", target["expr"])
    }
    served = {name for name, _ in await scrape(admin)}
    served |= {"imagine_generator_batch_capacity_images"}  # a generator's own, tested in tests/worker
    assert queried and queried <= served
