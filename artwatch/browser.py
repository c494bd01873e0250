"""How artwatch starts Chromium (Playwright): the system browser, headless, quiet.

Playwright's own browser download is not used: the browser is the distribution's
(`ARTWATCH_CHROMIUM_PATH`, Debian's /usr/bin/chromium by default). The flags keep it from
phoning home (background networking, component updates, sync), which on a closed network
only produces refused connections, and let it run as root in a container.
"""

from __future__ import annotations

from typing import Any

from artwatch.settings import Settings, get_settings

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def chromium_launch_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for Playwright's `chromium.launch()` (and scrapy-playwright)."""
    settings = settings or get_settings()
    return {
        "executable_path": str(settings.chromium_path),
        "headless": True,
        "args": list(CHROMIUM_ARGS),
    }
