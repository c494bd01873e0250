"""How artwatch starts Chromium (Playwright): the system browser, headless, quiet.

Playwright's own browser download is not used: the browser is the distribution's
(`ARTWATCH_CHROMIUM_PATH`, Debian's /usr/bin/chromium by default). The flags keep it from
phoning home (background networking, component updates, sync), which on a closed network
only produces refused connections, and let it run as root in a container.
"""

from __future__ import annotations

import os
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


def browser_problem(settings: Settings | None = None) -> str | None:
    """Why Chromium cannot be started (a message naming the setting), or None if it can.

    Checked before a crawl that needs the browser, so a wrong ARTWATCH_CHROMIUM_PATH fails
    that crawl with this message instead of failing every page one by one.
    """
    settings = settings or get_settings()
    path = settings.chromium_path
    if not path.is_file():
        return (f"Chromium not found at {path} (ARTWATCH_CHROMIUM_PATH); "
                "on Debian: apt-get install chromium")
    if not os.access(path, os.X_OK):
        return f"Chromium at {path} (ARTWATCH_CHROMIUM_PATH) is not executable"
    return None
