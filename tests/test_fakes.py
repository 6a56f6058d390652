"""The fake Discord and the fake Slack share one server base (tests/fakes/server.py): the same lifecycle,
bounded wait and fault switches, with the same names and meanings on both."""

from __future__ import annotations

import inspect

import aiohttp
import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.server import FakeServer
from tests.fakes.slack import FakeSlack

FAKES = [FakeDiscord, FakeSlack]
SHARED = ("rate_limit", "server_error", "fail", "slow", "clear_faults", "wait_until")


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("fake_class", FAKES)
def test_a_shared_switch_keeps_the_base_signature(fake_class: type[FakeServer], name: str) -> None:
    """A fake may add keyword options of its own after the shared ones (Discord's `is_global`), never
    rename, reorder or re-default them."""
    shared = inspect.signature(getattr(FakeServer, name)).parameters
    own = inspect.signature(getattr(fake_class, name)).parameters
    assert list(own)[: len(shared)] == list(shared)
    for parameter in shared.values():
        assert (own[parameter.name].kind, own[parameter.name].default) == (parameter.kind, parameter.default)


@pytest.mark.parametrize("fake_class", FAKES)
async def test_lifecycle_and_bounded_wait(fake_class: type[FakeServer]) -> None:
    async with fake_class() as fake:
        assert fake.port and fake.base_url == f"http://127.0.0.1:{fake.port}"
        assert await fake.wait_until(lambda: "ready") == "ready"
        timed_out = rf"^fake {fake.name}: timed out after 0.05s waiting for nothing$"
        with pytest.raises(AssertionError, match=timed_out):
            await fake.wait_until(lambda: None, timeout=0.05, what="nothing")
        base_url = fake.base_url

    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(base_url)
