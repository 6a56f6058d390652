"""LocalPoster: delivers `cli` and `web` jobs as files in an outbox directory (no chat to post to).

    <outbox>/job-<id>/grid.png, 0.png, 1.png, …   the "message" (re-delivery overwrites it: an edit)
    <outbox>/job-<id>/failure.txt                    a failed or cancelled job's reason
    <outbox>/posts.jsonl                              one line per post: {"job_id", "what", "how": new|edit}

Idempotent like every poster: the post is the `posts.jsonl` line, written (and synced) before anything else;
a retry after a crash finds the job's "new" line there and edits (overwrites the files) instead of making a
second message, whenever the crash came.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.posters import RecordRefs
from jobs.models import Job
from jobs.settings import Settings

OUTBOX_DIR_NAME = "outbox"
POSTS_FILENAME = "posts.jsonl"


def make_poster(settings: Settings) -> LocalPoster:
    return LocalPoster(outbox=settings.data_dir / OUTBOX_DIR_NAME)


class LocalPoster:
    def __init__(self, *, outbox: Path) -> None:
        self.outbox = outbox

    def message_dir(self, job_id: int) -> Path:
        return self.outbox / f"job-{job_id}"

    async def post_progress(self, job: Job, *, progress: float, record_refs: RecordRefs) -> None:
        return None  # the CLI reads progress from the queue; a file per update would be noise

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        await self._open_message(job, "result", record_refs)
        directory = self.message_dir(job.id)
        _write_atomic(directory / "grid.png", grid_png)
        for index, png in enumerate(images):
            _write_atomic(directory / f"{index}.png", png)
        return {"final_message_id": _message_id(job.id)}

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        await self._open_message(job, str(job.status), record_refs)
        _write_atomic(self.message_dir(job.id) / "failure.txt", f"{job.status}: {reason}\n".encode())
        return {"final_message_id": _message_id(job.id)}

    async def aclose(self) -> None:
        return None

    async def _open_message(self, job: Job, what: str, record_refs: RecordRefs) -> None:
        """Post (a "new" line) or edit (an "edit" line) the job's message, synced, then record its id."""
        how = "edit" if self._has_message(job.id) else "new"
        self.outbox.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"job_id": job.id, "what": what, "how": how}) + "\n"
        with open(self.outbox / POSTS_FILENAME, "a", encoding="utf-8") as log_file:
            log_file.write(line)
            log_file.flush()
            os.fsync(log_file.fileno())
        if not job.refs.final_message_id:
            await record_refs(final_message_id=_message_id(job.id))

    def _has_message(self, job_id: int) -> bool:
        try:
            lines = (self.outbox / POSTS_FILENAME).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return False
        return any(json.loads(line)["job_id"] == job_id for line in lines if line.strip())


def _message_id(job_id: int) -> str:
    return f"local:job-{job_id}"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
