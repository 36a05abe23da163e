"""The book (`make book`, build/book/) in a real browser: every page reached from the home page
loads, every image on it is drawn, no link points nowhere, nothing is fetched from outside the site,
and every notebook page shows CI's outputs under the note that says which model produced them.

Run by `make book` after the site is built; it needs the built site, so it is not in the unit run.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "book"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

PAGE_FACTS = """() => ({
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  outputs: document.querySelectorAll('.jp-OutputArea-output').length,
  note: document.body.innerText.includes("Outputs from CI's smoke run"),
  title: document.title,
})"""


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").is_file():
        pytest.fail("build/book is missing: run `make book` (it builds the site, then runs this test)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


async def _crawl(base: str) -> dict[str, dict]:
    """Every HTML page reachable from the home page, with what the browser saw on it."""
    from cookbook.kit.browser import blocked, launch, new_page

    seen: dict[str, dict] = {}
    todo = [base + "index.html"]
    async with launch() as browser:
        page = await new_page(browser, allow=[base.rstrip("/")])
        while todo:
            url = todo.pop()
            if url in seen:
                continue
            response = await page.goto(url, wait_until="load")
            facts = await page.evaluate(PAGE_FACTS)
            facts["status"] = response.status if response else None
            seen[url] = facts
            for link in facts["links"]:
                target = urldefrag(link)[0]
                if target.startswith(base) and target.endswith(".html") and target not in seen:
                    todo.append(target)
        seen["blocked"] = {"urls": blocked(page)}
    return seen


@pytest.fixture(scope="module")
def pages(site):
    return asyncio.run(_crawl(site))


def test_every_notebook_and_both_readmes_are_pages(site, pages):
    urls = set(pages) - {"blocked"}
    assert site + "index.html" in urls and site + "zh.html" in urls
    for name in NOTEBOOKS:
        assert f"{site}notebooks/{name}.html" in urls, f"{name} is not reachable from the home page"


def test_pages_load_and_every_image_is_drawn(pages):
    for url, facts in pages.items():
        if url == "blocked":
            continue
        assert facts["status"] == 200, url
        broken = [i["src"] for i in facts["images"] if not i["ok"]]
        assert broken == [], f"{url}: images not drawn: {broken}"


def test_no_link_points_nowhere(site, pages):
    targets = {urldefrag(link)[0] for url, f in pages.items() if url != "blocked" for link in f["links"]}
    local = sorted(t for t in targets if t.startswith(site))
    assert local
    for target in local:
        path = urlparse(target).path
        try:
            with urllib.request.urlopen(urljoin(site, path), timeout=10) as response:
                assert response.status == 200, target
        except urllib.error.HTTPError as err:
            pytest.fail(f"broken link {target}: {err.code}")


def test_nothing_is_fetched_from_outside_the_site(pages):
    assert pages["blocked"]["urls"] == []


def test_notebook_pages_show_ci_outputs_and_say_which_model_answered(site, pages):
    for name in NOTEBOOKS:
        facts = pages[f"{site}notebooks/{name}.html"]
        assert facts["note"], f"{name}: no note saying which model produced the answers"
        assert facts["outputs"] > 0, f"{name}: the page shows no outputs"
    images = sum(len(pages[f"{site}notebooks/{n}.html"]["images"]) for n in NOTEBOOKS)
    assert images >= len(NOTEBOOKS) // 2, "the notebooks' plots and pictures are missing"
