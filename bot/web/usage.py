"""Placeholder until the queue API lands."""

from aiohttp import web

routes = web.RouteTableDef()
