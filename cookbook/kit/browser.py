"""One headless Chromium for the notebooks that drive a browser (05 GUI agent, 06 UI to code).

Playwright's sync API refuses to run inside Jupyter's event loop, so this module uses the async
API: notebooks ``await`` it at top level, scripts and tests wrap it in ``asyncio.run``. Chromium is
found automatically: Playwright's own build where ``playwright install chromium`` ran, else a
system Chromium (Debian's ``chromium`` package). ``python -m cookbook.kit.browser`` reports which.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SYSTEM_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Quiet flags: no sandbox (root in containers), no GPU, no background traffic, no hyperlink pings,
# WebRTC only through the proxy (which goes nowhere, see ``closed_network_flags``).
FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-pings",
    "--disable-domain-reliability", "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
PASS_SCHEMES = ("data", "about", "blob")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
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


@functools.cache
def _dead_end() -> socket.socket:
    """A loopback TCP port held bound but never listening: every connection to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def dead_proxy() -> str:
    """The proxy every context is given: a loopback port this process holds and never opens (05, 06)."""
    return f"http://127.0.0.1:{_dead_end().getsockname()[1]}"


def closed_network_flags() -> list[str]:
    """Chromium switches that close the network below Playwright's router (05, 06).

    The router sees requests, not connections: resource hints, speculative prefetches, frame
    navigations, WebSockets and WebRTC can open sockets it never hears of. So every connection goes
    to a proxy that refuses it, loopback included (``<-loopback>``), and no host name resolves but
    the loopback ones a sandbox app is served from (``new_page`` lets its ``allow`` past the proxy).
    """
    return [f"--proxy-server={dead_proxy()}", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a URL, default ports filled in; None when it has no network origin
    or does not parse (05, 06)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port out of range or not a number, a malformed IPv6 host
        return None
    if not host or port is None:
        return None
    return scheme, host, port


def allowed(url: str, origins: Sequence[tuple[str, str, int]]) -> bool:
    """True for ``data:``, ``about:`` and ``blob:`` URLs and for a URL whose parsed origin is one of
    ``origins``; user names, longer ports and look-alike hosts do not pass (05, 06)."""
    if url.split(":", 1)[0].lower() in PASS_SCHEMES:
        return True
    found = origin(url)
    return found is not None and found in origins


@contextlib.asynccontextmanager
async def launch(headless: bool = True) -> AsyncIterator[Any]:
    """A running headless Chromium (Playwright ``Browser``), closed when the block ends (05, 06)."""
    from playwright.async_api import async_playwright

    executable = chromium_executable()
    if executable is None:
        raise BrowserMissing(INSTALL_HINT)
    async with async_playwright() as p:
        browser = await p.chromium.launch(headless=headless, executable_path=executable,
                                          args=[*FLAGS, *closed_network_flags()])
        try:
            yield browser
        finally:
            await browser.close()


_BLOCKED: dict[int, list[str]] = {}


async def new_page(browser: Any, *, width: int = 1280, height: int = 800, scale: float = 1.0,
                   mobile: bool = False, javascript: bool = True, allow: Sequence[str] = ()) -> Any:
    """A page in its own context: fixed viewport, and every request outside ``allow`` aborted (05, 06).

    ``allow`` holds origins (an app's, for example ``http://127.0.0.1:8765``), compared parsed:
    scheme, host and port. ``data:``, ``about:`` and ``blob:`` URLs pass. Below the router, the
    context's proxy refuses every connection but those to ``allow``. ``blocked(page)`` lists what
    was aborted.
    """
    origins = []
    for entry in allow:
        found = origin(entry)
        if found is None or urlsplit(entry).path not in ("", "/") or urlsplit(entry).username is not None:
            raise ValueError(f"allow={entry!r}: give an origin such as 'http://127.0.0.1:8765' (no path, no user)")
        origins.append(found)
    # an http(s) origin's WebSockets (JupyterLab's kernel channel) are the same origin: ws(s)://
    schemes = {"http": ("http", "ws"), "https": ("https", "wss")}
    bypass = ",".join(f"{x}://[{h}]:{p}" if ":" in h else f"{x}://{h}:{p}"
                      for s, h, p in origins for x in schemes.get(s, (s,)))
    context = await browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=scale,
        is_mobile=mobile, has_touch=mobile, java_script_enabled=javascript,
        service_workers="block", offline=False,
        proxy={"server": dead_proxy(), "bypass": bypass or "<-loopback>"},
    )
    blocked: list[str] = []

    async def guard(route: Any) -> None:
        url = route.request.url
        if allowed(url, origins):
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
    """``python -m cookbook.kit.browser``: say which Chromium will be used, or how to get one (exit 1)."""
    path = chromium_executable()
    if path is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    print(f"Chromium: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
