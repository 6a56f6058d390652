"""The import rules between the rooms (docs/design.md, "Rooms"), checked on every import statement of
every module, including the ones inside functions:

- `bot/` never imports torch or `generator/` (a bot process starts in well under a second);
- `jobs/` imports neither `bot/` nor `generator/` (it is the contract both sides build on);
- `generator/` never imports `bot.web` (the GPU process loads no dashboard code);
- nothing outside `jobs/` imports SQLAlchemy: the queue's operations are the only way to the database.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# room → module prefixes it must never import
FORBIDDEN = {
    "bot": ("torch", "generator", "sqlalchemy", "alembic"),
    "jobs": ("bot", "generator", "torch"),
    "generator": ("bot.web", "sqlalchemy", "alembic"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every `import x` and `from x import y` in the file, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_follow_the_rules(room: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / room).rglob("*.py"))
        for line, module in imported_modules(path)
        if any(_is_under(module, prefix) for prefix in FORBIDDEN[room])
    ]
    assert broken == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sqlalchemy import select\n    import torch.nn\n")
    assert imported_modules(module) == [(2, "sqlalchemy"), (3, "torch.nn")]
