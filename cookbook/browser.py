"""One headless Chromium for the notebooks that drive a browser (05 GUI agent, 06 UI to code).

Playwright's sync API refuses to run inside Jupyter's event loop, so this module uses the async
API: notebooks ``await`` it at top level, scripts and tests wrap it in ``asyncio.run``. Chromium is
found automatically: Playwright's own build where ``playwright install chromium`` ran, else a
system Chromium (Debian's ``chromium`` package). ``python -m cookbook.browser`` reports which.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

SYSTEM_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Quiet, closed-network flags: no sandbox (root in containers), no GPU, no background traffic.
FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
)
PASS_SCHEMES = ("data:", "about:", "blob:")
INSTALL_HINT = (
    "no Chromium found: run `.venv/bin/playwright install chromium` (downloads Playwright's build), "
    "or install your system's package (Debian/Ubuntu as root: `apt-get install -y chromium`)."
)


class BrowserMissing(RuntimeError):
    """No Chromium on this machine; the message says how to install one."""


def _playwright_chromium() -> str | None:
    """The Chromium that `playwright install chromium` downloaded, if it is there."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # noqa: BLE001 - no driver or no registry: treat as not installed
        return None
    return path if path and Path(path).is_file() else None


def chromium_executable() -> str | None:
    """Path of the Chromium to drive: Playwright's own build first, else a system Chromium (05, 06)."""
    import asyncio

    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:  # the sync probe cannot run inside Jupyter's loop; the system check still can
        own = _playwright_chromium()
        if own:
            return own
    for name in SYSTEM_CHROMIUMS:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.asynccontextmanager
async def launch(headless: bool = True) -> AsyncIterator[Any]:
    """A running headless Chromium (Playwright ``Browser``), closed when the block ends (05, 06)."""
    from playwright.async_api import async_playwright

    executable = chromium_executable()
    if executable is None:
        raise BrowserMissing(INSTALL_HINT)
    async with async_playwright() as p:
        browser = await p.chromium.launch(headless=headless, executable_path=executable, args=list(FLAGS))
        try:
            yield browser
        finally:
            await browser.close()


_BLOCKED: dict[int, list[str]] = {}


async def new_page(browser: Any, *, width: int = 1280, height: int = 800, scale: float = 1.0,
                   mobile: bool = False, javascript: bool = True, allow: Sequence[str] = ()) -> Any:
    """A page in its own context: fixed viewport, and every request outside ``allow`` aborted (05, 06).

    ``allow`` holds URL prefixes (an app's origin, for example ``http://127.0.0.1:8765``); ``data:``,
    ``about:`` and ``blob:`` URLs pass. ``blocked(page)`` lists what was aborted.
    """
    context = await browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=scale,
        is_mobile=mobile, has_touch=mobile, java_script_enabled=javascript,
        service_workers="block", offline=False,
    )
    blocked: list[str] = []
    allowed = tuple(allow) + PASS_SCHEMES

    async def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(allowed):
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("blockedbyclient")

    await context.route("**/*", guard)
    page = await context.new_page()
    _BLOCKED[id(page)] = blocked
    page.on("close", lambda _: _BLOCKED.pop(id(page), None))
    return page


def blocked(page: Any) -> list[str]:
    """The URLs this page asked for and was refused, in order (05, 06)."""
    return list(_BLOCKED.get(id(page), []))


def main() -> int:
    """``python -m cookbook.browser``: say which Chromium will be used, or how to get one (exit 1)."""
    path = chromium_executable()
    if path is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    print(f"Chromium: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
