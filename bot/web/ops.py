"""`/healthz` (public: is the dashboard up and its database reachable) and `/metrics` (Prometheus text;
signed in, or `Authorization: Bearer <dashboard password>` for a scraper): the handlers every process
serves alike (jobs/health.py)."""

from __future__ import annotations

from aiohttp import web

from jobs.health import healthz, metrics_page

routes = web.RouteTableDef()
routes.get("/healthz")(healthz)
routes.get("/metrics")(metrics_page)
