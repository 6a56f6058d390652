"""How to spell a command in a message so that a person can paste it: the install's own programs.

`command_hint("python")` is `.venv/bin/python` for the README's install run from its directory (the
interpreter running now, relative to the working directory when it is below it), and the interpreter's
full path otherwise; `command_hint("imagine")` is the `imagine` script beside it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def command_hint(program: str) -> str:
    interpreter = Path(sys.executable)
    path = interpreter if program == "python" else interpreter.with_name(program)
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if not relative.startswith("..") else str(path)
