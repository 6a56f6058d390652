"""A job's life after enqueue: claim, heartbeat, finish, fail, release, cancel, reap, delivery, ETA."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from jobs import errors
from jobs.models import Delivery, Status, utcnow
from jobs.queue import Queue, Rendered
from tests.jobs.factories import TOKENS, rendered, request


async def test_claim_leases_and_finish_stores_images_in_one_go(queue: Queue) -> None:
    job = (await queue.enqueue(request(options={"images": 2}))).job
    now = utcnow()
    [claimed] = await queue.claim("w1", 8, lease_seconds=30, now=now)
    assert (claimed.id, claimed.status, claimed.lease_owner, claimed.attempts) == (
        job.id,
        Status.RUNNING,
        "w1",
        1,
    )
    assert claimed.lease_expires_at == now + timedelta(seconds=30) and claimed.started_at == now
    assert await queue.claim("w2", 8) == []
    beat = await queue.heartbeat([job.id], "w1", 0.5, now=now + timedelta(seconds=20))
    assert not beat.cancel_requested and not beat.lost
    assert (await queue.get_job(job.id)).progress == 0.5
    done = await queue.finish(job.id, "w1", grid_png=b"grid", images=rendered(2), gpu_seconds=2.5)
    assert (done.status, done.progress, done.gpu_seconds, done.lease_owner) == (Status.DONE, 1.0, 2.5, None)
    assert done.delivery is Delivery.PENDING and done.render_time is not None and done.wait_time is not None
    images = await queue.images(job.id)
    assert [(image.index, image.tokens) for image in images] == [(-1, None), (0, TOKENS), (1, TOKENS)]
    assert (await queue.image(job.id, -1)).png == b"grid"


async def test_finish_after_lease_lost_stores_nothing(queue: Queue) -> None:
    job = (await queue.enqueue(request(options={"images": 1}))).job
    now = utcnow()
    await queue.claim("slow", 8, lease_seconds=1, now=now)
    [reaped] = await queue.reap(now=now + timedelta(seconds=2))
    assert (reaped.status, reaped.attempts) == (Status.QUEUED, 1)
    beat = await queue.heartbeat([job.id], "slow", 0.9, now=now + timedelta(seconds=2))
    assert beat.lost == {job.id}
    [again] = await queue.claim("fast", 8)
    assert again.attempts == 2
    with pytest.raises(errors.LeaseLost, match="no longer holds job"):
        await queue.finish(job.id, "slow", grid_png=b"late", images=rendered(1), gpu_seconds=1)
    with pytest.raises(errors.LeaseLost):
        await queue.fail(job.id, "slow", reason="late")
    assert await queue.images(job.id) == []
    await queue.finish(job.id, "fast", grid_png=b"grid", images=rendered(1), gpu_seconds=1)
    assert (await queue.image(job.id, -1)).png == b"grid"


async def test_fail_retries_with_backoff_then_fails_with_reason(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(max_attempts=3, retry_backoff_seconds=10.0)
    job = (await queue.enqueue(request())).job
    now = utcnow()
    await queue.claim("w", 8, now=now)
    retried = await queue.fail(job.id, "w", reason="CUDA out of memory", detail="Traceback …", now=now)
    assert (retried.status, retried.run_after, retried.error) == (
        Status.QUEUED,
        now + timedelta(seconds=10),
        "CUDA out of memory",
    )
    assert await queue.claim("w", 8, now=now + timedelta(seconds=9)) == []  # backing off
    await queue.claim("w", 8, now=now + timedelta(seconds=10))
    retried = await queue.fail(job.id, "w", reason="CUDA out of memory", now=now + timedelta(seconds=10))
    assert retried.run_after == now + timedelta(seconds=30)  # doubled
    await queue.claim("w", 8, now=now + timedelta(seconds=30))
    failed = await queue.fail(
        job.id, "w", reason="CUDA out of memory", detail="d", now=now + timedelta(seconds=31)
    )
    assert (failed.status, failed.attempts, failed.error, failed.error_detail) == (
        Status.FAILED,
        3,
        "CUDA out of memory",
        "d",
    )
    assert failed.delivery is Delivery.PENDING and failed.finished_at is not None


async def test_fail_not_retryable_fails_at_once(queue: Queue) -> None:
    job = (await queue.enqueue(request())).job
    await queue.claim("w", 8)
    failed = await queue.fail(job.id, "w", reason="the model cannot draw this prompt", retryable=False)
    assert (failed.status, failed.attempts) == (Status.FAILED, 1)


async def test_release_gives_jobs_back_without_counting_the_attempt(queue: Queue) -> None:
    ids = [(await queue.enqueue(request(options={"images": 1}))).job.id for _ in range(3)]
    claimed = await queue.claim("w", 8)
    assert await queue.release([job.id for job in claimed] + [999], "w") == ids
    assert await queue.release(ids, "someone-else") == []
    for job_id in ids:
        job = await queue.get_job(job_id)
        assert (job.status, job.attempts, job.lease_owner) == (Status.QUEUED, 0, None)
    assert [job.id for job in await queue.claim("w2", 8)] == ids


async def test_cancel_queued_at_once_running_flagged(queue: Queue) -> None:
    queued = (await queue.enqueue(request(options={"images": 1}))).job
    running = (await queue.enqueue(request(user="bob", options={"images": 1}))).job
    await queue.claim("w", 1)  # alice's first
    await queue.claim("w", 1)  # bob's
    waiting = (await queue.enqueue(request(options={"images": 1}))).job
    with pytest.raises(errors.NotAllowed):
        await queue.cancel(waiting.id, "bob")
    cancelled = await queue.cancel(waiting.id, "alice")
    assert cancelled.status is Status.CANCELLED and cancelled.delivery is Delivery.PENDING
    flagged = await queue.cancel(running.id, "admin", is_admin=True)
    assert (flagged.status, flagged.cancel_requested) == (Status.RUNNING, True)
    beat = await queue.heartbeat([queued.id, running.id], "w", 0.3)
    assert beat.cancel_requested == {running.id}
    assert (await queue.cancelled(running.id, "w")).status is Status.CANCELLED
    with pytest.raises(errors.JobNotFound):
        await queue.cancel(12345, "alice")
    assert (await queue.cancel(waiting.id, "alice")).status is Status.CANCELLED  # idempotent


async def test_cancel_flag_wins_when_the_worker_finishes_anyway(queue: Queue) -> None:
    job = (await queue.enqueue(request(options={"images": 1}))).job
    await queue.claim("w", 8)
    await queue.cancel(job.id, "alice")
    finished = await queue.finish(job.id, "w", grid_png=b"g", images=rendered(1), gpu_seconds=1)
    assert finished.status is Status.CANCELLED and await queue.images(job.id) == []


async def test_reap_requeues_then_fails_past_the_limit(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(max_attempts=2)
    await queue.enqueue(request())
    now = utcnow()
    await queue.claim("dies-1", 8, lease_seconds=5, now=now)
    assert await queue.reap(now=now + timedelta(seconds=4)) == []  # lease still live
    [requeued] = await queue.reap(now=now + timedelta(seconds=6))
    assert (requeued.status, requeued.attempts, requeued.lease_owner) == (Status.QUEUED, 1, None)
    assert requeued.error_detail == "lease of dies-1 expired"
    later = now + timedelta(seconds=10)
    await queue.claim("dies-2", 8, lease_seconds=5, now=later)
    [failed] = await queue.reap(now=later + timedelta(seconds=6))
    assert (failed.status, failed.attempts) == (Status.FAILED, 2)
    assert failed.error == "the worker rendering this died 2 times; giving up"
    assert failed.delivery is Delivery.PENDING


async def test_reap_cancels_a_dead_workers_cancelled_job(queue: Queue) -> None:
    job = (await queue.enqueue(request())).job
    now = utcnow()
    await queue.claim("w", 8, lease_seconds=1, now=now)
    await queue.cancel(job.id, "alice", now=now)
    [reaped] = await queue.reap(now=now + timedelta(seconds=2))
    assert reaped.status is Status.CANCELLED


async def test_position_and_eta_from_the_generators_busy_time_rate(queue: Queue) -> None:
    now = utcnow()
    first = (await queue.enqueue(request(user="a", options={"images": 4}), now=now)).job
    assert (await queue.position(first.id, now=now))[1] is None  # no generator has drawn yet: no estimate
    [job] = await queue.claim("w", 4, now=now)
    await queue.finish(
        job.id, "w", grid_png=b"g", images=rendered(4), gpu_seconds=4, now=now + timedelta(seconds=4)
    )
    later = now + timedelta(seconds=4)
    # the generator measured 1 image per second of drawing (idle time not counted) and says so
    await queue.worker_heartbeat(
        "w", device="cpu", model="m", batch_images=4, images_per_second=1.0, now=later
    )
    b = (await queue.enqueue(request(user="b", options={"images": 2}), now=later)).job
    c = await queue.enqueue(request(user="c", options={"images": 3}), now=later)
    assert c.position == 2 and c.eta == timedelta(seconds=5)  # 2 images ahead + its own 3
    assert await queue.position(b.id, now=later) == (1, timedelta(seconds=2))
    assert await queue.position(first.id, now=later) == (0, timedelta(0))
    # a minute of idle time later the estimate has not grown (it did, divided by idle wall time)
    idle = later + timedelta(seconds=60)
    await queue.worker_heartbeat(
        "w", device="cpu", model="m", batch_images=4, images_per_second=1.0, now=idle
    )
    assert await queue.position(c.job.id, now=idle) == (2, timedelta(seconds=5))
    await queue.claim("w", 2, now=idle)
    await queue.heartbeat([b.id], "w", 0.5, now=idle)
    assert await queue.position(b.id, now=idle) == (0, timedelta(seconds=1))
    assert (await queue.position(c.job.id, now=idle))[0] == 1
    # a dead generator's rate does not count: no estimate
    assert (await queue.position(c.job.id, now=idle + timedelta(hours=1)))[1] is None


async def test_delivery_retries_then_undeliverable(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(delivery_timeout_seconds=600)
    job = (await queue.enqueue(request(options={"images": 1}))).job
    now = utcnow()
    await queue.claim("w", 8, now=now)
    await queue.finish(job.id, "w", grid_png=b"g", images=rendered(1), gpu_seconds=1, now=now)
    [due] = await queue.due_deliveries(now=now)
    assert due.id == job.id and due.delivery_attempts == 1
    assert await queue.due_deliveries(now=now + timedelta(seconds=30)) == []  # held for the first deliverer
    retry = await queue.delivery_failed(job.id, "Discord 503", retry_after=7, now=now)
    assert retry.delivery is Delivery.PENDING and retry.delivery_next_try_at == now + timedelta(seconds=7)
    assert await queue.due_deliveries(now=now + timedelta(seconds=6)) == []
    [due] = await queue.due_deliveries(now=now + timedelta(seconds=7))
    backoff = await queue.delivery_failed(job.id, "Discord 503", now=now + timedelta(seconds=8))
    assert backoff.delivery_next_try_at == now + timedelta(seconds=13)  # the rate limit did not double it
    [due] = await queue.due_deliveries(now=now + timedelta(seconds=13))
    doubled = await queue.delivery_failed(job.id, "Discord 502", now=now + timedelta(seconds=14))
    assert doubled.delivery_next_try_at == now + timedelta(seconds=24)  # the second failure: 5 s doubled
    assert (doubled.delivery_attempts, doubled.delivery_failures) == (3, 2)
    gone = await queue.delivery_failed(job.id, "Unknown Channel", now=now + timedelta(seconds=601))
    assert (gone.delivery, gone.delivery_error) == (Delivery.UNDELIVERABLE, "Unknown Channel")
    assert await queue.due_deliveries(now=now + timedelta(days=1)) == []


async def test_message_refs_and_mark_delivered(queue: Queue) -> None:
    created = utcnow()
    job = (await queue.enqueue(request(options={"images": 1}))).job
    await queue.record_message_refs(
        job.id,
        interaction_token="tok",
        interaction_created_at=created,
        placeholder_message_id="m1",
        thread_ts="1.2",
    )
    await queue.claim("w", 8)
    await queue.finish(job.id, "w", grid_png=b"g", images=rendered(1), gpu_seconds=1)
    [due] = await queue.due_deliveries()
    assert (due.refs.interaction_token, due.refs.interaction_created_at) == ("tok", created)
    delivered = await queue.mark_delivered(job.id, final_message_id="m2", permalink="https://x")
    assert delivered.delivery is Delivery.DELIVERED
    assert (delivered.refs.final_message_id, delivered.refs.placeholder_message_id) == ("m2", "m1")
    assert delivered.refs.extra == {"thread_ts": "1.2", "permalink": "https://x"}
    with pytest.raises(ValueError, match="timezone-aware"):
        await queue.record_message_refs(job.id, interaction_created_at=created.replace(tzinfo=None))


async def test_cancelled_and_failed_jobs_are_delivered_too(queue: Queue) -> None:
    job = (await queue.enqueue(request())).job
    await queue.cancel(job.id, "alice")
    assert [due.status for due in await queue.due_deliveries()] == [Status.CANCELLED]


async def test_worker_registry(queue: Queue) -> None:
    now = utcnow()
    await queue.worker_heartbeat(
        "gpu-1", device="cuda:0", model="dalle-mini/dalle-mini", batch_images=8, now=now
    )
    await queue.worker_heartbeat(
        "gpu-2", device="cpu", model="dalle-mini/dalle-mini", batch_images=2, now=now - timedelta(hours=1)
    )
    job = (await queue.enqueue(request(options={"images": 3}))).job
    await queue.claim("gpu-1", 8)
    await queue.finish(job.id, "gpu-1", grid_png=b"g", images=rendered(3), gpu_seconds=1, now=now)
    await queue.worker_heartbeat(
        "gpu-1",
        device="cuda:0",
        model="dalle-mini/dalle-mini",
        batch_images=8,
        now=now + timedelta(seconds=5),
    )
    [online] = await queue.workers_alive(now=now + timedelta(seconds=5))
    assert (online.worker_id, online.jobs_done, online.images_done, online.started_at) == ("gpu-1", 1, 3, now)
    restarted = now + timedelta(seconds=6)
    await queue.worker_heartbeat(
        "gpu-1", device="cuda:0", model="m", batch_images=8, started_at=restarted, now=restarted
    )
    [online] = await queue.workers_alive(now=restarted)
    assert (online.started_at, online.jobs_done, online.images_done, online.model) == (restarted, 0, 0, "m")


async def test_liveness_is_judged_by_each_generators_own_heartbeat(queue: Queue) -> None:
    now = utcnow()
    await queue.worker_heartbeat(
        "fast", device="cpu", model="m", batch_images=1, heartbeat_seconds=1, now=now
    )
    await queue.worker_heartbeat(
        "slow", device="cpu", model="m", batch_images=1, heartbeat_seconds=30, now=now
    )
    later = now + timedelta(seconds=5)  # "fast" missed four beats, "slow" none
    assert [w.worker_id for w in await queue.workers_alive(now=later)] == ["slow"]
    assert [w.worker_id for w in await queue.workers_seen(60, now=later)] == ["fast", "slow"]  # admin views
    assert await queue.workers_alive(now=now + timedelta(seconds=61)) == []


async def test_a_generator_that_stops_leaves_the_registry_at_once(queue: Queue) -> None:
    await queue.worker_heartbeat("gpu-1", device="cpu", model="m", batch_images=1)
    assert [w.worker_id for w in await queue.workers_alive()] == ["gpu-1"]
    await queue.worker_stopped("gpu-1")
    assert await queue.workers_alive() == [] and await queue.workers_seen(3600) == []


async def test_space_settings_round_trip(queue: Queue) -> None:
    assert (await queue.get_settings("slack", "T1")).allowed_channels == ()
    saved = await queue.update_settings(
        "slack", "T1", allowed_channels=["C1"], admin_user_ids=["U1"], daily_quota_images=50
    )
    assert saved == await queue.get_settings("slack", "T1")
    assert saved.is_admin("U1") and not saved.is_admin("U2", role_ids=["R1"])
    with_role = await queue.update_settings("slack", "T1", admin_role_ids=["R1"])
    assert with_role.is_admin("U2", role_ids=["R0", "R1"])
    updated = await queue.update_settings("slack", "T1", daily_quota_images=None)
    assert (updated.allowed_channels, updated.daily_quota_images) == (("C1",), None)
    with pytest.raises(ValueError, match="unknown"):
        await queue.update_settings("slack", "T1", colour="red")


async def test_listen_wakes_on_enqueue(queue: Queue) -> None:
    async with queue.listen() as listener:
        await queue.enqueue(request())
        if queue.is_postgres:
            await asyncio.wait_for(listener.notified.wait(), timeout=5)
        else:
            assert not listener.notified.is_set()  # SQLite: polling only


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_listen_notices_a_killed_connection(queue: Queue, db_url: str) -> None:
    async with queue.listen() as listener:
        admin = await asyncpg.connect(
            make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert killed == 1
        await asyncio.wait_for(listener.lost.wait(), timeout=5)  # noticed at once, not at the next poll


async def test_naive_datetimes_are_refused(queue: Queue) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await queue.claim("w", 1, now=utcnow().replace(tzinfo=None))


async def test_finish_many_stores_a_batch_and_skips_lost_leases(queue: Queue) -> None:
    ids = [(await queue.enqueue(request(user=f"u{n}", options={"images": 2}))).job.id for n in range(3)]
    now = utcnow()
    await queue.claim("w", 4, lease_seconds=1, now=now)  # the first two
    await queue.reap(now=now + timedelta(seconds=2))  # both lost
    await queue.claim("w", 9, now=now + timedelta(seconds=2))  # all three again, attempts 2, 2, 1
    await queue.cancel(ids[2], "u2")
    stolen = await queue.release([ids[1]], "w")
    assert stolen == [ids[1]]
    done = await queue.finish_many(
        "w", [Rendered(job_id, b"grid", rendered(2), 1.5) for job_id in ids], now=now + timedelta(seconds=3)
    )
    assert [(job.id, job.status, job.gpu_seconds) for job in done] == [
        (ids[0], Status.DONE, 1.5),
        (ids[2], Status.CANCELLED, 1.5),
    ]
    assert len(await queue.images(ids[0])) == 3
    assert await queue.images(ids[1]) == [] and await queue.images(ids[2]) == []
    with pytest.raises(ValueError, match="asked for 2 images, got 1"):
        [job] = await queue.claim("w", 9)
        await queue.finish(job.id, "w", grid_png=b"g", images=rendered(1), gpu_seconds=0)
    assert (await queue.get_job(ids[1])).status is Status.RUNNING  # the failed finish changed nothing


async def test_failing_a_cancelled_job_cancels_it(queue: Queue) -> None:
    job = (await queue.enqueue(request())).job
    await queue.claim("w", 8)
    await queue.cancel(job.id, "alice")
    ended = await queue.fail(job.id, "w", reason="interrupted")
    assert (ended.status, ended.error) == (Status.CANCELLED, "interrupted")


async def test_operations_log_an_action_and_the_job_id(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="jobs.queue")
    job = (await queue.enqueue(request())).job
    now = utcnow()
    await queue.claim("w", 8, lease_seconds=1, now=now)
    await queue.reap(now=now + timedelta(seconds=2))
    actions = [(record.action, record.job_id) for record in caplog.records]  # type: ignore[attr-defined]
    assert actions == [("job_enqueued", job.id), ("job_claimed", job.id), ("job_reaped_queued", job.id)]


async def test_concurrent_deliverers_take_disjoint_jobs(queue: Queue) -> None:
    ids = [(await queue.enqueue(request(user=f"u{n}", options={"images": 1}))).job.id for n in range(12)]
    for job in await queue.claim("w", 12):
        await queue.finish(job.id, "w", grid_png=b"g", images=rendered(1), gpu_seconds=0)
    batches = await asyncio.gather(*(queue.due_deliveries(limit=4) for _ in range(4)))
    taken = [job.id for batch in batches for job in batch]
    assert sorted(taken) == ids  # each job once, none twice
