"""The shared Chromium: found, launched, and every request outside the allowed origin aborted."""

from __future__ import annotations

import asyncio

import pytest

import cookbook as cb

pytestmark = pytest.mark.skipif(cb.kit.browser.chromium_executable() is None, reason=cb.kit.browser.INSTALL_HINT)


def test_outside_requests_are_aborted_and_listed(tmp_path):
    (tmp_path / "app.png").write_bytes(b"not really a png")
    page_html = (
        '<img src="/app.png"><img src="http://198.51.100.7/tracker.gif">'
        '<link rel="stylesheet" href="https://cdn.example.com/x.css"><p id="t">hello</p>'
    )
    (tmp_path / "index.html").write_text(page_html)

    async def run():
        with cb.kit.assets.serve(tmp_path) as base:
            async with cb.kit.browser.launch() as browser:
                page = await cb.kit.browser.new_page(browser, width=400, height=300, allow=(base,))
                seen = []
                page.on("requestfinished", lambda r: seen.append(r.url))
                await page.goto(f"{base}/index.html", wait_until="load")
                text = await page.inner_text("#t")
                return base, text, seen, cb.kit.browser.blocked(page)

    base, text, finished, refused = asyncio.run(run())
    assert text == "hello"
    assert f"{base}/app.png" in finished
    assert sorted(refused) == ["http://198.51.100.7/tracker.gif", "https://cdn.example.com/x.css"]
    assert not any(u.startswith(("http://198.51", "https://cdn")) for u in finished)


def test_javascript_off_and_viewport():
    async def run():
        async with cb.kit.browser.launch() as browser:
            page = await cb.kit.browser.new_page(browser, width=390, height=844, scale=3, mobile=True, javascript=False)
            await page.set_content('<p id="p">static</p><script>document.getElementById("p").textContent="ran"</script>')
            png = await page.screenshot()
            return await page.inner_text("#p"), page.viewport_size, png

    text, size, png = asyncio.run(run())
    assert text == "static"
    assert size == {"width": 390, "height": 844}
    from io import BytesIO

    from PIL import Image

    w, h = Image.open(BytesIO(png)).size  # mobile emulation may round one device pixel away
    assert w == 390 * 3 and abs(h - 844 * 3) <= 1


def test_main_names_the_browser(capsys):
    assert cb.kit.browser.main() == 0
    assert "Chromium:" in capsys.readouterr().out
