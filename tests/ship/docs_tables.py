"""The settings table of docs/operations.md, made from `Settings`.

python -m tests.ship.docs_tables      rewrites it in place
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from jobs.settings import SECRET_FIELDS, Settings, env_name

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
START = "<!-- settings table: written by `python -m tests.ship.docs_tables`, checked by tests/ship -->"
END = "<!-- end of settings table -->"


def _default(value: object) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return "*(empty)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    return f"`{value}`"


def settings_table() -> str:
    lines = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        secret = " (secret)" if name in SECRET_FIELDS else ""
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{env_name(name)}` | {_default(field.default)} | {description}{secret} |")
    return "\n".join(lines)


def table_in(text: str) -> str:
    start = text.index(START) + len(START)
    return text[start : text.index(END, start)].strip()


def rewrite(path: Path = OPERATIONS) -> None:
    text = path.read_text()
    path.write_text(text.replace(table_in(text), settings_table()))


if __name__ == "__main__":
    rewrite()
