"""The generator process's tasks, supervised: render loop, delivery loop, worker registry, wake-ups.

    Worker.run(stop)
    ├── "render"     RenderLoop.run      claim → draw → store (generator/scheduler.py)
    ├── "deliver"    Deliverer.run       post results through bot.posters (generator/delivery.py)
    ├── "registry"   every `registry_seconds`: worker_heartbeat (worker, device, model, batch) + reap
    ├── "wakeup"     Postgres LISTEN → pokes the render loop (a hint; polling is the guarantee)
    └── side_tasks   named extras from generator/serve.py: "retention", "health" (generator/housekeeping.py)

`stop` (an Event; SIGTERM/SIGINT set it in generator/serve.py) makes the render loop stop claiming and
finish or release what it holds; the delivery loop then posts what finished and stops; the side tasks are
cancelled and the worker leaves the registry.
A task that dies with an exception is logged with its traceback and stops the worker (`run` raises
`WorkerTaskDied`): a generator that silently stopped rendering or delivering would be worse than none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from generator.dbretry import Outages
from generator.delivery import wait_any
from jobs.errors import DatabaseUnavailable, ImagineError, one_line
from jobs.queue import Queue

if TYPE_CHECKING:  # a deliver-only worker never imports torch
    from generator.delivery import Deliverer
    from generator.scheduler import RenderLoop

log = logging.getLogger(__name__)

REGISTRY_SECONDS = 10.0  # worker heartbeat and reaping of expired leases, this often
LISTEN_REFRESH_SECONDS = 30.0  # re-open the LISTEN connection this often (it may have died with the server)
STOP_TIMEOUT_SECONDS = 30.0  # after stop, wait this long for each loop before cancelling them
LISTEN_RETRY_SECONDS = 1.0  # a lost LISTEN connection is opened again after this
DEREGISTER_SECONDS = 5.0  # leaving the registry on stop may take this long

SideTask = Callable[
    [asyncio.Event], Coroutine[Any, Any, None]
]  # runs until the Event is set; cancelled after


class WorkerTaskDied(ImagineError):
    """One of the generator's tasks died; the traceback is in the log. The generator stopped."""

    exit_status = 10


def default_worker_id() -> str:
    """hostname:pid — stable for the life of the process, unique across machines."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _died(task: asyncio.Task[Any], stop: asyncio.Event) -> bool:
    return task.cancelled() or task.exception() is not None or not stop.is_set()


class Worker:
    def __init__(
        self,
        *,
        queue: Queue,
        worker_id: str,
        render: RenderLoop | None,
        deliverer: Deliverer | None,
        device: str = "",
        model: str = "",
        registry_seconds: float = REGISTRY_SECONDS,
        listen_refresh_seconds: float = LISTEN_REFRESH_SECONDS,
        side_tasks: Mapping[str, SideTask] | None = None,
    ) -> None:
        if render is None and deliverer is None:
            raise ValueError("a worker needs a render loop, a delivery loop, or both")
        self.queue = queue
        self.worker_id = worker_id
        self.render = render
        self.deliverer = deliverer
        self.device = device
        self.model = model
        self.registry_seconds = registry_seconds
        self.listen_refresh_seconds = listen_refresh_seconds
        self.outages = Outages(describe=queue.fault)
        self.side_tasks = dict(side_tasks or {})  # more supervised tasks (retention, health server), by name

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set (returns) or a task dies (raises `WorkerTaskDied`, or the
        `DatabaseUnavailable` a loop gave up on).

        Stopping goes in order: the render loop finishes or releases what it holds; then the delivery loop
        posts what finished meanwhile (bounded by its drain time) and stops; then the side tasks are
        cancelled and the worker leaves the registry, so nobody waits for a generator that is gone."""
        deliver_stop = asyncio.Event()  # set once the render loop is done: what it finished gets posted
        main: dict[str, asyncio.Task[None]] = {}
        if self.render is not None:
            main["render"] = asyncio.create_task(self.render.run(stop), name="render")
        if self.deliverer is not None:
            main["deliver"] = asyncio.create_task(self.deliverer.run(deliver_stop), name="deliver")
        side = {"registry": asyncio.create_task(self._registry(stop), name="registry")}
        if self.render is not None:
            side["wakeup"] = asyncio.create_task(self._wakeup(stop), name="wakeup")
        for name, side_task in self.side_tasks.items():
            side[name] = asyncio.create_task(side_task(stop), name=name)
        log.info(
            "generator started",
            extra={"action": "worker_started", "worker_id": self.worker_id, "tasks": sorted([*main, *side])},
        )
        stopper = asyncio.create_task(stop.wait(), name="stop")
        died: asyncio.Task[Any] | None = None
        try:
            done, _ = await asyncio.wait(
                [stopper, *main.values(), *side.values()], return_when=asyncio.FIRST_COMPLETED
            )
            # A task that ends before stop was asked for, or with an exception, has died.
            died = next((task for task in done if task is not stopper and _died(task, stop)), None)
            if died is not None:
                self._log_death(died)
            stop.set()
            if "render" in main:
                await asyncio.wait([main["render"]], timeout=STOP_TIMEOUT_SECONDS)
            deliver_stop.set()
            if "deliver" in main:
                await asyncio.wait([main["deliver"]], timeout=STOP_TIMEOUT_SECONDS)
        finally:
            stop.set()
            deliver_stop.set()
            for task in [stopper, *main.values(), *side.values()]:
                if not task.done():
                    task.cancel()
            await asyncio.gather(stopper, *main.values(), *side.values(), return_exceptions=True)
            await self._deregister()
        for task in main.values():  # a loop that failed while stopping counts too
            if died is None and not task.cancelled() and task.exception() is not None:
                died = task
                self._log_death(task)
        log.info("generator stopped", extra={"action": "worker_stopped", "worker_id": self.worker_id})
        if died is not None:
            cause = died.exception() if not died.cancelled() else None
            if isinstance(cause, DatabaseUnavailable):
                raise cause  # its one line says what to fix
            raise WorkerTaskDied(
                f"the generator's {died.get_name()} task died (see the log above); it stopped"
            )

    def _log_death(self, task: asyncio.Task[Any]) -> None:
        exc = task.exception() if not task.cancelled() else None
        log.error(
            "task %s ended: %r; stopping",
            task.get_name(),
            exc,
            exc_info=None if isinstance(exc, DatabaseUnavailable) else exc,
            extra={"action": "worker_task_died", "worker_id": self.worker_id, "task": task.get_name()},
        )

    async def _deregister(self) -> None:
        """Leave the registry: a generator that stopped is not alive (best effort; a stale row ages out)."""
        try:
            await asyncio.wait_for(self.queue.worker_stopped(self.worker_id), DEREGISTER_SECONDS)
        except Exception as exc:
            log.warning(
                "could not leave the worker registry: %s",
                one_line(exc, 200) or type(exc).__name__,
                extra={"action": "worker_deregister_failed", "worker_id": self.worker_id},
            )

    async def _registry(self, stop: asyncio.Event) -> None:
        """Say this generator is alive (admin views; the CLI looks for one) and reap expired leases."""
        while not stop.is_set():
            try:
                await self.queue.worker_heartbeat(
                    self.worker_id,
                    device=self.device,
                    model=self.model,
                    batch_images=self.render.engine.capacity if self.render is not None else 0,
                    heartbeat_seconds=self.registry_seconds,
                    images_per_second=self.render.images_per_second if self.render is not None else None,
                )
                await self.queue.reap()
            except Exception as exc:
                self.outages.ride_out(exc, "worker heartbeat", worker_id=self.worker_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.registry_seconds)

    async def _wakeup(self, stop: asyncio.Event) -> None:
        """Forward NOTIFYs to the render loop. A closed LISTEN connection (a server restart, a killed
        backend) is noticed at once and listened again; polling covers the gap."""
        assert self.render is not None
        while not stop.is_set():
            try:
                async with self.queue.listen() as listener:
                    if not self.queue.is_postgres:
                        await stop.wait()  # SQLite: no notifications; polling does the work
                        return
                    refresh_at = asyncio.get_running_loop().time() + self.listen_refresh_seconds
                    while not stop.is_set() and asyncio.get_running_loop().time() < refresh_at:
                        await wait_any(listener.notified, listener.lost, stop, timeout=1.0)
                        if listener.lost.is_set():
                            log.warning(
                                "LISTEN connection lost: listening again (polling meanwhile)",
                                extra={"action": "listen_lost", "worker_id": self.worker_id},
                            )
                            break
                        if listener.notified.is_set():
                            listener.notified.clear()
                            self.render.wake.set()
            except Exception as exc:
                self.outages.ride_out(exc, "LISTEN (polling meanwhile)", worker_id=self.worker_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LISTEN_RETRY_SECONDS)
