"""The admin web dashboard: server-rendered pages over the job queue (aiohttp + Jinja2, no build step).

create_app(settings=…, queue=…)       the aiohttp Application (tests drive it with aiohttp's client)
run_dashboard(settings, queue)        async context manager serving it; yields the base URL
"""

from bot.web.app import create_app
from bot.web.server import run_dashboard

__all__ = ["create_app", "run_dashboard"]
