"""`bot.slack.admins.SlackAdmins` against the fake's users.info."""

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.admins import SlackAdmins
from tests.fakes.slack import FakeSlack


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workspace(fake_slack: FakeSlack) -> FakeSlack:
    fake_slack.add_user("U0ADMIN", is_admin=True)
    fake_slack.add_user("U0OWNER", is_owner=True)
    fake_slack.add_user("U0MEMBER")
    return fake_slack


@pytest.mark.parametrize(
    ("user_id", "expected"), [("U0ADMIN", True), ("U0OWNER", True), ("U0MEMBER", False), ("U0GONE", False)]
)
async def test_workspace_admins_and_owners_are_admins(
    workspace: FakeSlack, slack_client: AsyncWebClient, user_id: str, expected: bool
) -> None:
    admins = SlackAdmins()
    assert await admins.is_admin(slack_client, team_id=workspace.team_id, user_id=user_id) is expected


async def test_configured_admins_need_no_lookup(workspace: FakeSlack, slack_client: AsyncWebClient) -> None:
    admins = SlackAdmins(admin_user_ids={"U0MEMBER"})
    assert await admins.is_admin(slack_client, team_id=workspace.team_id, user_id="U0MEMBER")
    assert workspace.calls_to("users.info") == []


async def test_answers_are_cached_per_team_until_they_expire(
    workspace: FakeSlack, slack_client: AsyncWebClient
) -> None:
    clock = Clock()
    admins = SlackAdmins(cache_seconds=60, clock=clock)
    for team_id in ("T1", "T1", "T2"):
        assert await admins.is_admin(slack_client, team_id=team_id, user_id="U0ADMIN")
    assert len(workspace.calls_to("users.info")) == 2

    workspace.users["U0ADMIN"]["is_admin"] = False  # demoted
    clock.now += 61
    assert not await admins.is_admin(slack_client, team_id="T1", user_id="U0ADMIN")


async def test_other_failures_are_not_guessed(workspace: FakeSlack, slack_client: AsyncWebClient) -> None:
    workspace.api_error("users.info", "ratelimited")
    with pytest.raises(SlackApiError):
        await SlackAdmins().is_admin(slack_client, team_id=workspace.team_id, user_id="U0ADMIN")
