"""StoredResultPoster: delivers `cli` and `web` jobs, whose result is already where its reader looks.

Nobody waits in a chat for these jobs: `imagine "prompt"` and `imagine fetch` read the grid from the
queue, the dashboard shows it from there, and retention deletes it on the schedule the operator set. So
delivering writes nothing anywhere else (an earlier outbox directory of copies grew forever and outlived
retention); marking the job delivered is the whole of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.posters import RecordRefs
from jobs.models import Job
from jobs.settings import Settings


def make_poster(settings: Settings) -> StoredResultPoster:
    return StoredResultPoster()


class StoredResultPoster:
    async def post_progress(
        self, job: Job, *, progress: float, record_refs: RecordRefs, preview: bytes | None = None
    ) -> None:
        return None  # readers poll the job's progress from the queue

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        return {}

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        return {}

    async def aclose(self) -> None:
        return None
