"""A small Dockerfile reader for the tests: instructions with their flags and arguments, per stage.

Follows the reference (https://docs.docker.com/reference/dockerfile/): parser directives on top, `#` comment
lines, `\\` line continuations (comment lines inside a continuation are dropped), exec form (a JSON array)
or shell form, `--flag=value` options before the arguments, `ARG`s before the first `FROM` usable in
`FROM` lines. Strict: an unknown instruction or a broken JSON array is an error, as it is for Docker.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

INSTRUCTIONS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)
_DIRECTIVE = re.compile(r"^#\s*(syntax|escape|check)\s*=\s*(.+)$", re.IGNORECASE)
_FLAG = re.compile(r"^--([a-z-]+)(?:=(\S*))?\s*")


class DockerfileError(ValueError):
    pass


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case
    flags: dict[str, str]  # --from=build → {"from": "build"}
    value: str  # the rest, continuation lines joined
    exec_form: list[str] | None  # the JSON array, when the arguments are one

    def words(self) -> list[str]:
        """The arguments: the exec form's list, else the shell-split text."""
        return self.exec_form if self.exec_form is not None else shlex.split(self.value)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    directives: dict[str, str]
    global_args: dict[str, str | None]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for stage in self.stages for i in stage.all(keyword)]


def _logical_lines(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    directives: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines) and (match := _DIRECTIVE.match(lines[index].strip())):  # directives first
        directives[match.group(1).lower()] = match.group(2).strip()
        index += 1
    escape = directives.get("escape", "\\")
    logical: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(lines[index:], start=index + 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # comments (also inside a continuation) and blank lines between instructions
        if not current:
            start = number
        if stripped.endswith(escape):
            current.append(stripped[: -len(escape)].strip())
            continue
        current.append(stripped)
        logical.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        raise DockerfileError(f"line {start}: the file ends inside a line continuation")
    return directives, logical


def _instruction(number: int, line: str) -> Instruction:
    keyword, _, rest = line.partition(" ")
    keyword = keyword.upper()
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(f"line {number}: unknown instruction {keyword}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    if keyword in {"ADD", "COPY", "FROM", "RUN", "HEALTHCHECK"}:
        while match := _FLAG.match(rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end() :]
    if keyword == "HEALTHCHECK":  # the options, then CMD <command> or NONE
        sub, _, rest = rest.partition(" ")
        if sub.upper() == "NONE":
            return Instruction(number, keyword, flags, "NONE", None)
        if sub.upper() != "CMD":
            raise DockerfileError(f"line {number}: HEALTHCHECK wants CMD or NONE")
        rest = rest.strip()
    exec_form = None
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except json.JSONDecodeError as exc:
            if keyword in {"RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK"}:
                raise DockerfileError(f"line {number}: broken JSON array: {exc}") from exc
            parsed = None
        if isinstance(parsed, list) and all(isinstance(word, str) for word in parsed):
            exec_form = parsed
    return Instruction(number, keyword, flags, rest, exec_form)


def parse(text: str) -> Dockerfile:
    directives, lines = _logical_lines(text)
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for number, line in lines:
        instruction = _instruction(number, line)
        if instruction.keyword == "FROM":
            words = instruction.value.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
                raise DockerfileError(f"line {number}: FROM <image> [AS <name>]")
            stages.append(Stage(words[0], words[2] if len(words) == 3 else None))
        elif not stages:
            if instruction.keyword != "ARG":
                raise DockerfileError(f"line {number}: only ARG may come before the first FROM")
            name, _, default = instruction.value.partition("=")
            global_args[name.strip()] = default.strip() if "=" in instruction.value else None
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise DockerfileError("no FROM")
    return Dockerfile(directives, global_args, stages)


def parse_file(path: Path) -> Dockerfile:
    return parse(path.read_text())


def substitute(text: str, values: dict[str, str | None]) -> str:
    """`${NAME}` / `$NAME` / `${NAME:-default}` as Docker expands them in FROM lines and ENV."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        value = values.get(name)
        return value if value else (default or "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, text)


def env_pairs(instruction: Instruction) -> dict[str, str]:
    """ENV/LABEL `key=value key2="value 2"` (the modern form; `ENV key value` for one pair)."""
    words = shlex.split(instruction.value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)
