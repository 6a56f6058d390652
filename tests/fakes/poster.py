"""RecordingPoster: a chat in memory for the in-process generator tests, with a real poster's contract.

It keeps one message per job and every post made to it: a first post is "new", a later one (the job's
refs already name its message, as after a lost response or a restart) is an "edit", so a test sees a
duplicate as a second "new".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.posters import RecordRefs
from jobs.models import Job


@dataclass
class Post:
    job_id: int
    what: str  # "result", or the failed/cancelled job's status
    how: str  # "new" | "edit"


@dataclass
class ChatMessage:
    grid_png: bytes | None = None
    images: list[bytes] = field(default_factory=list)
    failure: str | None = None  # "<status>: <reason>"


class RecordingPoster:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.messages: dict[int, ChatMessage] = {}

    async def post_progress(
        self, job: Job, *, progress: float, record_refs: RecordRefs, preview: bytes | None = None
    ) -> None:
        return None

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        message = await self._open_message(job, "result", record_refs)
        message.grid_png, message.images = grid_png, list(images)
        return {"final_message_id": _message_id(job.id)}

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        message = await self._open_message(job, str(job.status), record_refs)
        message.failure = f"{job.status}: {reason}"
        return {"final_message_id": _message_id(job.id)}

    async def aclose(self) -> None:
        return None

    def job_ids_posted(self) -> list[int]:
        """Every job with a "new" post, once per new post (a job twice here was posted twice)."""
        return [post.job_id for post in self.posts if post.how == "new"]

    async def _open_message(self, job: Job, what: str, record_refs: RecordRefs) -> ChatMessage:
        how = "edit" if job.refs.final_message_id else "new"
        self.posts.append(Post(job.id, what, how))
        if how == "new":
            self.messages[job.id] = ChatMessage()
            await record_refs(final_message_id=_message_id(job.id))
        return self.messages.setdefault(job.id, ChatMessage())


def _message_id(job_id: int) -> str:
    return f"chat:job-{job_id}"
