"""Helpers for driving the dashboard with aiohttp's test client like a browser would."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def sign_in(client: TestClient, password: str = PASSWORD, next_path: str = "/") -> int:
    """Sign in through the form; returns the status of the POST (302 on success)."""
    form_page = await client.get("/login")
    token = csrf_from(await form_page.text())
    response = await client.post(
        "/login",
        data={"csrf_token": token, "password": password, "next": next_path},
        allow_redirects=False,
    )
    return response.status


async def page_csrf(client: TestClient, path: str = "/") -> str:
    """The CSRF token of the signed-in session, read from a page's forms (the sign-out form has one)."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return csrf_from(await response.text())


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: TestClient) -> Samples:
    """`/metrics` read by prometheus_client's own parser: (sample name, labels) → value."""
    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
