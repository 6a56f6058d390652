"""The one way a duration is written for people: `duration(12.3)` → "12 s", `duration(150)` → "3 min".

    under 10 s      one decimal      "2.2 s"   (render and wait times are often this short)
    under 1 min     whole seconds    "45 s"
    under 1 h       minutes, up      "3 min"   (an ETA or a reset time rounds up: never promise early)
    longer          hours, minutes   "2 h 30 min"

Callers add their own words around it ("about …", "in …", "… ago").
"""

from __future__ import annotations

import math
from datetime import timedelta


def duration(value: float | timedelta) -> str:
    seconds = max(0.0, value.total_seconds() if isinstance(value, timedelta) else float(value))
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{round(seconds)} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
