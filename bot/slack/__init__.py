"""The Slack frontend and poster (slack-bolt, slack_sdk).

app       run_slack(settings, queue) and build_app: Socket Mode or HTTP, signature and replay checks
commands  /imagine /imagine-queue /imagine-history and the admin commands
actions   the buttons under /imagine messages (routed by action_id, `bot.buttons`)
acks      answering inside Slack's 3 seconds
jobs      from a request to a queued job and its placeholder message
options   reading `/imagine <prompt> --images 4 …` text
blocks    Block Kit for the buttons and placeholders
home      the App Home tab
admins    who is a workspace admin (users.info, cached)
texts     every sentence Slack shows a person
manifest  the app manifest, generated from the commands
poster    SlackPoster: the generator posts progress and results with the bot token
"""
