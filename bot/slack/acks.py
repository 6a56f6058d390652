"""Answering a slash command inside Slack's 3 seconds, and well inside our 300 ms target.

    answer_within_deadline(ack, respond, work)
      work done within the deadline  → ack(text=answer)                   (the usual case)
      not yet                        → ack("adding your prompt…"), then respond(answer) on the response_url
      a burst (`AcksFirst`)          → ack at once; the work waits until every received command is acked

The acks and the work share one event loop: in a burst of commands, the enqueues (and the placeholder
posts after them) would otherwise delay the acks of the commands behind them. `bench/ack_latency_slack.py`
measures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_bolt.async_app import AsyncRespond

from bot.slack import texts

log = logging.getLogger(__name__)

#: Answer in the ack if the work is done by then; else ack now and answer on the response_url. Slack
#: allows 3 s; we aim for p99 < 300 ms. An enqueue takes a few ms, but a burst of commands queues up
#: on the database (100 at once on SQLite: ~2 s in all), so under a burst most acks say "adding your
#: prompt…" and the position follows on the response_url (bench/ack_latency_slack.py counts them).
ACK_DEADLINE_SECONDS = 0.2
#: With this many /imagine already waiting for the queue, a new one acks at once: in a burst, waiting
#: out the deadline would only tell us what we know (the database is busy) 200 ms later.
BUSY_ENQUEUE_COUNT = 4
ACKS_FIRST_MAX_WAIT_SECONDS = 1.0  # in a burst, work waits at most this long for the acks to go out


@dataclass(frozen=True)
class Answer:
    """A handler's ephemeral reply, and what to do after it is sent (still inside the listener)."""

    text: str
    then: Callable[[], Awaitable[None]] | None = None


Work = Callable[[], Awaitable["str | Answer"]]
Ack = Callable[..., Awaitable[object]]  # Bolt's ack, or a wrapper of it


class AcksFirst:
    """Counts /imagine commands received but not yet acked, so work can wait until all are acked.

    The acks and the enqueues share one event loop; in a burst, 100 enqueues (and their placeholder
    posts) would otherwise delay the acks of the commands behind them past Slack's patience.
    """

    def __init__(self, *, max_wait_seconds: float = ACKS_FIRST_MAX_WAIT_SECONDS) -> None:
        self.max_wait_seconds = max_wait_seconds
        self._unacked = 0
        self._all_sent = asyncio.Event()
        self._all_sent.set()

    def received(self) -> None:
        self._unacked += 1
        self._all_sent.clear()

    def sent(self) -> None:
        self._unacked -= 1
        if self._unacked == 0:
            self._all_sent.set()

    async def wait_until_sent(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_sent.wait(), self.max_wait_seconds)


async def answer_within_deadline(
    ack: Ack, respond: AsyncRespond, work: Work, *, deadline_seconds: float | None = None
) -> None:
    """Ack with `work()`'s answer if it comes within the deadline; else ack now, answer on response_url.

    Slack gives 3 seconds; a slow database must never turn into "/imagine failed with operation_timeout".
    An unexpected error is logged with its traceback and answered with a generic apology. The answer's
    follow-up (`Answer.then`) runs after the reply, in this listener (Bolt keeps it running after ack).
    """
    if deadline_seconds == 0.0:  # busy: answer first, so the ack never waits behind the work's CPU
        await ack(text=texts.still_queuing())
        answer = await _answer_or_apology(work)
        await respond(text=answer.text, response_type="ephemeral", replace_original=False)
        await _follow_up(answer)
        return
    task = asyncio.create_task(_answer_or_apology(work))
    done, _ = await asyncio.wait(
        {task}, timeout=ACK_DEADLINE_SECONDS if deadline_seconds is None else deadline_seconds
    )
    if done:
        answer = task.result()
        await ack(text=answer.text)
    else:
        await ack(text=texts.still_queuing())
        answer = await task
        await respond(text=answer.text, response_type="ephemeral", replace_original=False)
    await _follow_up(answer)


async def _follow_up(answer: Answer) -> None:
    if answer.then is not None:
        try:
            await answer.then()
        except Exception:
            log.exception("follow-up failed", extra={"action": "slack_followup_error"})


async def _answer_or_apology(work: Work) -> Answer:
    try:
        answer = await work()
    except Exception:
        log.exception("slash command failed", extra={"action": "slack_command_error"})
        return Answer(texts.failed_internal())
    return answer if isinstance(answer, Answer) else Answer(answer)
