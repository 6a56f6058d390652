"""`python -m jobs.healthcheck`: the container HEALTHCHECK. Exit 0 when every local /healthz answers 200.

It asks what this container serves, from the same settings the process read: the dashboard
(IMAGINE_DASHBOARD_ENABLED, IMAGINE_DASHBOARD_PORT) and the generator's metrics port
(IMAGINE_GENERATOR_METRICS_PORT). Both answer 503 when the database is unreachable. A container that serves
neither has nothing to ask and counts as healthy while its process runs (Docker restarts it when it exits).
No torch, no database driver: urllib only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from jobs.errors import SettingsError
from jobs.settings import Settings, load_settings

TIMEOUT_SECONDS = 5.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def health_urls(settings: Settings) -> list[str]:
    """The /healthz URLs this container's process serves, reached on loopback when bound to every address."""

    def url(host: str, port: int) -> str:
        host = "127.0.0.1" if host in ANY_ADDRESS else host
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"

    urls = []
    if settings.dashboard_enabled:
        urls.append(url(settings.dashboard_host, settings.dashboard_port))
    if settings.generator_metrics_port:
        urls.append(url(settings.generator_metrics_host, settings.generator_metrics_port))
    return urls


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when `url` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    problems = [problem for url in health_urls(settings) if (problem := check(url, args.timeout))]
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
