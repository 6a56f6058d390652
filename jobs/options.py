"""`JobOptions`: how a job's pictures are drawn. The one options type, from a user's words to the jobs row.

Every frontend hands `JobOptions.parse` what the user typed (strings or numbers), so Discord, Slack, the CLI
and the dashboard accept and refuse the same values in the same words. One "off" convention: `None` turns a
filter off (`top_k`: sample among every code; `top_p`: no nucleus cut).

Adding a sampling knob: a column in `jobs/schema.py` (+ a migration), a field here (its default, label and
help in the field's metadata, its check in `parse`), and its use in the sampler
(`generator/model/sampler.py`, `SamplingSettings.for_image`). The jobs row, the CLI flags, the Slack option
parser, the dashboard's form and the parameter displays follow from the field list.
"""

from __future__ import annotations

import argparse
import math
import secrets
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, ClassVar, get_args, get_type_hints

from jobs import errors

MAX_SEED = 2**63 - 1
MAX_IMAGES = 9
MAX_MODEL_LENGTH = 128  # the jobs.model column
CODEBOOK_SIZE = 16384  # DALL·E mini draws from a 16384-entry VQGAN codebook
OFF_WORDS = frozenset({"off", "none"})  # what a user may type for None


def _option(default: Any, label: str, help: str) -> Any:
    return field(default=default, metadata={"label": label, "help": help})


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How to draw. Defaults follow dalle-mini's inference notebook / min-dalle."""

    # Field order is display order (`shown`): the seed first, the key to drawing a grid again.
    # non-negative; `parse` draws a random one when omitted so every job is reproducible
    seed: int = _option(0, "Seed", "A fixed seed draws the same pictures again (default: a random one)")
    images: int = _option(4, "Images", "How many pictures in the grid, 1 to 9 (default 4)")
    # super-conditioning ("cond_scale" in dalle-mini): uncond + scale·(cond − uncond)
    guidance_scale: float = _option(
        10.0, "Guidance", "How closely to follow the prompt, 0 to 100 (default 10)"
    )
    temperature: float = _option(1.0, "Temperature", "Randomness of the drawing, 0.01 to 10 (default 1)")
    top_k: int | None = _option(
        256, "Top-k", "Sample among the k likeliest image codes, 1 to 16384 (default 256)"
    )
    top_p: float | None = _option(
        None, "Top-p", "Nucleus sampling: keep the likeliest codes up to this mass (default off)"
    )
    # checkpoint name; "" means the generator's configured model
    model: str = _option("", "Model", "The checkpoint to draw with (default: the generator's)")

    NAMES: ClassVar[tuple[str, ...]] = (
        "images",
        "seed",
        "guidance_scale",
        "top_k",
        "top_p",
        "temperature",
        "model",
    )

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, models: tuple[str, ...] = ()) -> JobOptions:
        """Validate options as typed by a user (strings or numbers); raise a `BadOption` subclass."""
        d = cls()  # defaults (slots dataclasses keep no class-level defaults)
        unknown = sorted(set(raw) - set(cls.NAMES))
        if unknown:
            raise errors.UnknownOption(
                f"unknown option {', '.join(repr(name) for name in unknown)}: "
                f"the options are {', '.join(cls.NAMES)}"
            )
        images = _integer(raw.get("images", d.images), "images")
        if not 1 <= images <= MAX_IMAGES:
            raise errors.ImagesOutOfRange(f"images must be from 1 to {MAX_IMAGES}, got {images}")
        if raw.get("seed") is None:
            seed = secrets.randbelow(2**31)
        else:
            seed = _integer(raw["seed"], "seed")
            if seed < 0:
                raise errors.NegativeSeed(f"seed must be 0 or more, got {seed}")
            if seed > MAX_SEED:
                raise errors.BadOption(f"seed must be at most {MAX_SEED}, got {seed}")
        guidance_scale = _number(raw.get("guidance_scale", d.guidance_scale), "guidance_scale", 0.0, 100.0)
        top_k_raw = raw.get("top_k", d.top_k)
        top_k = None if _is_off(top_k_raw) else _integer(top_k_raw, "top_k")
        if top_k is not None and not 1 <= top_k <= CODEBOOK_SIZE:
            raise errors.BadOption(f"top_k must be from 1 to {CODEBOOK_SIZE} or off, got {top_k}")
        top_p_raw = raw.get("top_p", d.top_p)
        top_p = None if _is_off(top_p_raw) else _number(top_p_raw, "top_p", 0.0, 1.0)
        if top_p == 0.0:
            raise errors.BadOption("top_p must be more than 0 and at most 1, got 0")
        temperature = _number(raw.get("temperature", d.temperature), "temperature", 0.01, 10.0)
        model = str(raw.get("model") or "")
        if len(model) > MAX_MODEL_LENGTH:
            raise errors.BadOption(f"model is {len(model)} characters long; the most is {MAX_MODEL_LENGTH}")
        if model and models and model not in models:
            raise errors.BadOption(f"model must be one of {', '.join(models)}, got {model!r}")
        return cls(
            images=images,
            seed=seed,
            guidance_scale=guidance_scale,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            model=model,
        )

    # --- the jobs row -----------------------------------------------------------------------------------

    def columns(self) -> dict[str, Any]:
        """The jobs row's option columns (named like the fields)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobOptions:
        """Read back the option columns of a jobs row (floats come back as floats on every engine)."""
        values = {name: row[name] for name in cls.NAMES}
        for name in _FLOAT_OPTIONS:
            if values[name] is not None:
                values[name] = float(values[name])
        return cls(**values)

    # --- for people ---------------------------------------------------------------------------------------

    def shown(self) -> list[tuple[str, str]]:
        """(label, value) of every option that is on, as the parameter displays show them."""
        shown = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            text = f"{value:g}" if isinstance(value, float) else str(value)
            shown.append((spec.metadata["label"], text or "default"))
        return shown

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults, seed and images always (enough to reproduce)."""
        defaults = JobOptions()
        return {
            name: value
            for name, value in self.columns().items()
            if name in ("images", "seed") or value != getattr(defaults, name)
        }


_FLOAT_OPTIONS = tuple(
    name for name, hint in get_type_hints(JobOptions).items() if hint is float or float in get_args(hint)
)


def help_of(name: str) -> str:
    """The one-line description of option `name` (command help, Discord option descriptions)."""
    return str(_field(name).metadata["help"])


def _field(name: str) -> Field[Any]:
    return next(spec for spec in fields(JobOptions) if spec.name == name)


def add_option_arguments(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """`--images N --seed S --guidance-scale G …` for a command line; the values stay strings, for
    `JobOptions.parse` to check with the words every frontend uses."""
    for name in JobOptions.NAMES:
        if name not in skip:
            parser.add_argument(
                f"--{name.replace('_', '-')}", dest=name, metavar=name.upper(), help=help_of(name)
            )


def options_from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (the others: `JobOptions.parse`'s defaults)."""
    return {name: getattr(args, name) for name in JobOptions.NAMES if getattr(args, name, None) is not None}


def _is_off(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in OFF_WORDS)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise errors.BadOption(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        cls = errors.ImagesOutOfRange if name == "images" else errors.BadOption
        raise cls(f"{name} must be a whole number, got {str(value)[:20]!r}") from None


def _number(value: Any, name: str, low: float, high: float) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise errors.BadOption(f"{name} must be a number from {low:g} to {high:g}, got {str(value)[:20]!r}")
    return number
