"""The generator process: `python -m generator.serve`, started by `imagine serve` or on its own on GPU
machines, any number of them against one Postgres.

    settings → database (schema must be at head) → load the model once → Worker.run until SIGTERM/SIGINT

Whatever stops it before a clean stop ends in one line on stderr, prefixed `imagine generator:`, and the
exit status of its kind (the table in jobs/errors.py): 2 bad settings, 3 a database that cannot be used
(unreachable at start, or a fault that cannot pass: read-only, disk full), 4 a schema behind the code,
8 a model that cannot be loaded (nothing was claimed, so no job is lost), 10 a task that died (its
traceback is in the log).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any

from jobs.errors import EXIT_INTERNAL, EXIT_OK, ImagineError, internal_error, one_line
from jobs.faults import database_fault
from jobs.hints import command_hint
from jobs.logs import configure_from_settings
from jobs.queue import DELIVERY_HOLD_SECONDS, Queue
from jobs.settings import Settings, load_settings

log = logging.getLogger("generator.serve")


def try_tiny_hint() -> str:
    return (
        "to try the whole path offline, make a tiny random model: "
        f"`{command_hint('python')} -m generator.testing make-tiny ./tiny` then "
        "IMAGINE_MODEL_DIR=./tiny/dalle IMAGINE_VQGAN_DIR=./tiny/vqgan "
        "IMAGINE_CLIP_DIR=./tiny/clip IMAGINE_UPSCALER_DIR=./tiny/upscaler"
    )


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # generator.model.dalle.DalleMini (imported lazily: torch)
    name: str  # what the registry shows
    device: str
    ranker: Any = None  # generator.model.clip.ClipRanker; None when IMAGINE_CLIP_NAME is empty
    upscaler: Any = None  # generator.model.upscale.Upscaler; None when IMAGINE_UPSCALER_NAME is empty

    @property
    def default_candidates(self) -> int:
        """Candidates per image where neither the server nor IMAGINE_CANDIDATES_PER_IMAGE says: drawing
        twice as many costs little on a GPU's wide batch, a whole render more on a CPU."""
        return 2 if self.device.startswith("cuda") else 1


class ModelLoadError(ImagineError):
    """The model could not be loaded; the message says why and what to do."""

    exit_status = 8


class BatchTooLarge(ImagineError):
    """The sampler's caches for one batch do not fit: lower IMAGINE_BATCH_IMAGES."""

    exit_status = 8


# the setting that names each checkpoint (CheckpointError.part)
_CHECKPOINT_SETTINGS = {
    "model": "IMAGINE_MODEL_DIR",
    "vqgan": "IMAGINE_VQGAN_DIR",
    "clip": "IMAGINE_CLIP_DIR",
    "upscaler": "IMAGINE_UPSCALER_DIR",
}


def load_model(settings: Settings) -> LoadedModel:
    """Load DalleBart + VQGAN once (converted weights cached as safetensors: the next start is warm)."""
    import torch

    from generator.model.dalle import DalleMini
    from generator.model.errors import CheckpointError, CheckpointNotFound, HubUnreachable
    from generator.model.layers import NATIVE_BF16
    from generator.model.precision import fast_cpu_supported

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = settings.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if settings.decoder_weights != "float32" and not device.startswith("cpu"):
        raise ModelLoadError(
            f"IMAGINE_DECODER_WEIGHTS={settings.decoder_weights} is a CPU mode; on {device} set it to "
            "float32 and pick the precision with IMAGINE_DTYPE"
        )
    vqgan_dtype = settings.vqgan_dtype
    if vqgan_dtype == "auto":
        vqgan_dtype = "bfloat16" if device.startswith("cpu") and fast_cpu_supported() else "float32"
    if device.startswith("cpu") and not NATIVE_BF16:
        emulated = [f"IMAGINE_{name}=bfloat16" for name, value in
                    (("DTYPE", dtype), ("DECODER_WEIGHTS", settings.decoder_weights),
                     ("VQGAN_DTYPE", vqgan_dtype), ("UPSCALER_DTYPE", settings.upscaler_dtype))
                    if value == "bfloat16"]  # fmt: skip
        if emulated:
            log.warning(
                "%s: this CPU has no native bfloat16 (AVX512-BF16 or AMX): slower than float32 here",
                " and ".join(emulated),
                extra={"action": "bfloat16_emulated"},
            )
    try:
        model = DalleMini.load(
            settings.model_dir or settings.model_name,
            settings.vqgan_dir or settings.vqgan_name,
            revision=settings.model_revision,
            vqgan_revision=settings.vqgan_revision,
            cache_dir=settings.models_dir,
            device=device,
            dtype=dtype,
            decoder_weights=settings.decoder_weights,
            vqgan_dtype=vqgan_dtype,
        )
        ranker, upscaler = _load_helpers(settings, device)
    except HubUnreachable as exc:
        raise ModelLoadError(
            f"cannot load the {exc.part or 'model'} checkpoint: {_one_line(exc)}. Offline? On a machine with "
            f"network access run `hf download {settings.model_name} --local-dir dalle`, "
            f"`hf download {settings.vqgan_name} --local-dir vqgan`, `hf download {settings.clip_name} "
            f"--local-dir clip` and `hf download {settings.upscaler_name} --local-dir upscaler`, copy the "
            "directories here and set IMAGINE_MODEL_DIR=dalle IMAGINE_VQGAN_DIR=vqgan IMAGINE_CLIP_DIR=clip "
            f"IMAGINE_UPSCALER_DIR=upscaler; or {try_tiny_hint()}"
        ) from exc
    except CheckpointNotFound as exc:
        setting = _CHECKPOINT_SETTINGS.get(exc.part or "model")
        raise ModelLoadError(
            f"cannot load the model: {_one_line(exc)} (check {setting}); or {try_tiny_hint()}"
        ) from exc
    except CheckpointError as exc:
        setting = _CHECKPOINT_SETTINGS.get(exc.part or "model")
        raise ModelLoadError(f"cannot load the model: {_one_line(exc)} (check {setting})") from exc
    except torch.cuda.OutOfMemoryError as exc:
        raise ModelLoadError(
            f"cannot load the model: out of GPU memory on {device} ({_one_line(exc)}); "
            "free the GPU, pick another with IMAGINE_DEVICE, or use a smaller model (IMAGINE_MODEL_NAME)"
        ) from exc
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the model on {device} (IMAGINE_DEVICE): {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    name = str(settings.model_dir) if settings.model_dir else settings.model_name
    return LoadedModel(model=model, name=name, device=device, ranker=ranker, upscaler=upscaler)


def _load_helpers(settings: Settings, device: str) -> tuple[Any, Any]:
    """CLIP (ranks every grid) and Swin2SR (upscales), each optional: an empty name turns it off."""
    from generator.model.clip import ClipRanker
    from generator.model.dalle import checkpoint_part
    from generator.model.upscale import Upscaler

    ranker = upscaler = None
    if settings.clip_dir or settings.clip_name:
        with checkpoint_part("clip"):
            ranker = ClipRanker.load(
                settings.clip_dir or settings.clip_name,
                revision=settings.clip_revision,
                cache_dir=settings.models_dir,
                device=device,
            )
    if settings.upscaler_dir or settings.upscaler_name:
        with checkpoint_part("upscaler"):
            upscaler = Upscaler.load(
                settings.upscaler_dir or settings.upscaler_name,
                revision=settings.upscaler_revision,
                cache_dir=settings.models_dir,
                device=device,
                precision=settings.upscaler_dtype,
                tile=settings.upscaler_tile_pixels,
                overlap=settings.upscaler_overlap_pixels,
            )
    return ranker, upscaler


def _one_line(exc: BaseException) -> str:
    return one_line(exc, 600).rstrip(".") or type(exc).__name__


async def serve(
    settings: Settings,
    *,
    worker_id: str,
    stop: asyncio.Event,
    render: bool = True,
    deliver: bool = True,
    batching: str = "continuous",
    stop_grace_seconds: float | None = None,
    delivery_hold_seconds: float = DELIVERY_HOLD_SECONDS,
) -> int:
    """Run one generator until `stop`; returns 0 after a clean stop, raises the `ImagineError` that
    stopped it otherwise (see the module docstring)."""
    from bot.posters import make_posters
    from generator.delivery import Deliverer
    from generator.worker import Worker

    queue = Queue.connect(settings)
    try:
        try:
            await queue.check_schema()
            await queue.check_writable()
        except ImagineError:
            raise
        except Exception as exc:
            raise queue.fault(exc) or exc from exc
        render_loop = None
        device = model_name = ""
        if render:
            # Load before claiming anything: a model that cannot load loses no job.
            loaded = await asyncio.to_thread(load_model, settings)
            from generator.engine import ModelEngine
            from generator.scheduler import STOP_GRACE_SECONDS, Batching, RenderLoop

            try:  # the sampler's caches for a whole batch are allocated here, once
                model_engine = ModelEngine(
                    loaded.model, capacity=settings.batch_images, model_name=loaded.name
                )
            except (RuntimeError, MemoryError) as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
                raise BatchTooLarge(
                    f"cannot allocate a batch of {settings.batch_images} images on {loaded.device}: "
                    f"{_one_line(exc)}; lower IMAGINE_BATCH_IMAGES"
                ) from exc
            device, model_name = loaded.device, loaded.name
            render_loop = RenderLoop(
                queue=queue,
                engine=model_engine,
                worker_id=worker_id,
                batching=Batching(batching),
                stop_grace_seconds=STOP_GRACE_SECONDS if stop_grace_seconds is None else stop_grace_seconds,
                ranker=loaded.ranker,
                upscaler=loaded.upscaler,
                default_candidates=loaded.default_candidates,
                previews=loaded.device.startswith("cuda") if settings.previews is None else settings.previews,
            )
            log.info("model loaded", extra={"action": "model_loaded", "model": loaded.name, "device": device})
        deliverer = None
        posters = make_posters(settings) if deliver else {}
        if deliver:
            deliverer = Deliverer(queue=queue, posters=posters, hold_seconds=delivery_hold_seconds)
            if render_loop is not None:
                render_loop.on_progress = deliverer.note_progress
                render_loop.on_finished = deliverer.note_finished
                render_loop.on_preview = deliverer.note_preview
        worker = Worker(
            queue=queue,
            worker_id=worker_id,
            render=render_loop,
            deliverer=deliverer,
            device=device,
            model=model_name,
            registry_seconds=settings.heartbeat_seconds,
            side_tasks=side_tasks(settings, queue, worker_id, render_loop, device, model_name),
        )
        try:
            await worker.run(stop)
        finally:
            for poster in posters.values():
                await poster.aclose()
        return EXIT_OK
    finally:
        await queue.close()


def side_tasks(
    settings: Settings, queue: Any, worker_id: str, render_loop: Any, device: str, model_name: str
) -> dict[str, Any]:
    """Retention (when IMAGINE_RETENTION_*_DAYS is set) and /metrics + /healthz (when the port is set)."""
    from generator.housekeeping import GeneratorStats, health_task, retention_task
    from jobs.retention import Retention

    tasks = {}
    retention = Retention.from_days(settings.retention_images_days, settings.retention_prompts_days)
    if not retention.is_forever:
        tasks["retention"] = retention_task(queue, retention)
    if settings.generator_metrics_port is not None:
        stats = GeneratorStats(
            worker_id=worker_id,
            device=device,
            model=model_name,
            capacity=lambda: render_loop.engine.capacity if render_loop is not None else 0,
            jobs_done=lambda: render_loop.jobs_done if render_loop is not None else 0,
            images_done=lambda: render_loop.images_done if render_loop is not None else 0,
        )
        tasks["health"] = health_task(settings, queue, stats)
    return tasks


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, stop, signum)


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    if stop.is_set():
        return  # already stopping: one line in the log per stop, whatever else arrives
    log.info(
        "%s: stopping (no more claims; finishing or releasing in-flight jobs, then posting what finished)",
        signal.Signals(signum).name,
        extra={"action": "worker_stopping"},
    )
    stop.set()


def main(argv: list[str] | None = None) -> int:
    from generator.worker import default_worker_id

    parser = argparse.ArgumentParser(prog="python -m generator.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--worker-id", default=None, help="stable id in the worker registry (default host:pid)"
    )
    parser.add_argument("--no-render", action="store_true", help="only deliver (e.g. on a bot machine)")
    parser.add_argument("--no-deliver", action="store_true", help="only render (delivery runs elsewhere)")
    parser.add_argument("--batching", default="continuous", choices=["continuous", "batch", "job"])
    parser.add_argument(
        "--stop-grace-seconds",
        type=float,
        default=None,
        help="on SIGTERM, finish jobs that can finish within this (default 5), release the rest",
    )
    parser.add_argument(
        "--delivery-hold-seconds",
        type=float,
        default=DELIVERY_HOLD_SECONDS,
        help="a result taken for posting is not retried by another deliverer before this (default 60);"
        " after a crash its delivery resumes this much later",
    )
    args = parser.parse_args(argv)
    worker_id = args.worker_id or default_worker_id()

    async def run(settings: Settings) -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        return await serve(
            settings,
            worker_id=worker_id,
            stop=stop,
            render=not args.no_render,
            deliver=not args.no_deliver,
            batching=args.batching,
            stop_grace_seconds=args.stop_grace_seconds,
            delivery_hold_seconds=args.delivery_hold_seconds,
        )

    settings: Settings | None = None
    try:
        settings = load_settings()
        configure_from_settings(settings, worker_id=worker_id)
        return asyncio.run(run(settings))
    except ImagineError as exc:
        return _fail(str(exc), exc.exit_status)
    except Exception as exc:
        fault = database_fault(exc, settings.db_url) if settings is not None else None
        if fault is not None:
            return _fail(str(fault), fault.exit_status)
        log.error("the generator stopped on a bug", exc_info=exc, extra={"action": "worker_bug"})
        return _fail(internal_error(exc, traceback_at="the traceback is in the log above"), EXIT_INTERNAL)


def _fail(message: str, status: int) -> int:
    print(f"imagine generator: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
