"""Hostile pages against the shared Chromium (05, 06): a loopback listener that must see nothing.

Every page of the corpus tries to reach a raw TCP listener on 127.0.0.1 in its own way: resource
hints, frames, navigations, forms, pings, sockets, WebRTC, workers, user names in URLs. The UI-to-code
renderer (JavaScript off) and the agent's browser (JavaScript on, the app's origin allowed) must make
no connection to it at all, not even one that sends no request. The allow-list compares parsed
origins, never string prefixes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import cookbook as cb
from cookbook import design as D

pytestmark = pytest.mark.skipif(cb.kit.browser.chromium_executable() is None, reason=cb.kit.browser.INSTALL_HINT)


class Listener:
    """A raw TCP server on 127.0.0.1: it accepts anything and records the first line it is sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            conn.settimeout(0.5)
            try:
                first = conn.recv(200)
            except OSError:
                first = b""
            self.seen.append(first.split(b"\r\n")[0] or b"(a connection that sent nothing)")
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server():
    server = Listener()
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as probe:  # it does hear
        probe.sendall(b"PROBE\r\n")
    deadline = time.monotonic() + 2
    while not server.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.seen == [b"PROBE"]
    yield server
    server.close()


@pytest.fixture
def listener(server):
    """The module's listener, with nothing recorded yet."""
    server.seen.clear()
    return server


def corpus(port: int, allowed: str) -> dict[str, str]:
    """Pages that each try to reach 127.0.0.1:``port``; ``allowed`` is the host:port the page may
    use (the app's origin), borrowed as a user name to fool a string-prefix allow-list."""
    at, u = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    return {
        "img": f'<img src="{u}/img.png">',
        "img srcset": f'<img srcset="{u}/a.png 1x, {u}/b.png 2x">',
        "picture source": f'<picture><source srcset="{u}/p.webp" type="image/webp"><img src="x.png"></picture>',
        "stylesheet": f'<link rel="stylesheet" href="{u}/s.css">',
        "css @import": f'<style>@import url("{u}/i.css");</style>',
        "css url()": f'<div style="width:10px;height:10px;background:url({u}/bg.png)"></div>',
        "@font-face": f"<style>@font-face{{font-family:x;src:url({u}/f.woff)}} p{{font-family:x}}</style><p>t</p>",
        "preconnect": f'<link rel="preconnect" href="{u}">',
        "dns-prefetch": f'<link rel="dns-prefetch" href="{u}">',
        "prefetch": f'<link rel="prefetch" href="{u}/next.html">',
        "preload": f'<link rel="preload" as="image" href="{u}/pre.png">',
        "modulepreload": f'<link rel="modulepreload" href="{u}/m.js">',
        "prerender": f'<link rel="prerender" href="{u}/pr.html">',
        "speculation rules": ('<script type="speculationrules">{"prefetch": [{"source": "list", "urls": ["'
                              + u + '/sr.html"]}], "prerender": [{"source": "list", "urls": ["' + u + '/sr2.html"]}]}</script>'),
        "meta Link": f'<meta http-equiv="Link" content="<{u}/lh>; rel=preload; as=image">',
        "iframe": f'<iframe src="{u}/frame.html"></iframe>',
        "iframe srcdoc": f'<iframe srcdoc="<link rel=prefetch href={u}/in.html><img src={u}/in.png>"></iframe>',
        "frameset": f'<frameset><frame src="{u}/f.html"></frameset>',
        "object": f'<object data="{u}/o.swf"></object>',
        "embed": f'<embed src="{u}/e.swf">',
        "video and poster": f'<video poster="{u}/poster.png" src="{u}/v.mp4" autoplay></video>',
        "audio": f'<audio src="{u}/a.mp3" autoplay></audio>',
        "svg image": f'<svg><image href="{u}/s.png" width="10" height="10"/></svg>',
        "meta refresh": f'<meta http-equiv="refresh" content="0;url={u}/refresh">',
        "meta refresh in body": f"<body><meta http-equiv=\"Refresh\" content=\"0; URL='{u}/r2'\"></body>",
        "base href": f'<base href="{u}/"><img src="rel.png">',
        "a ping": f'<a id="a" href="#x" ping="{u}/ping">x</a><script>document.getElementById("a").click()</script>',
        "hovered link": f'<a href="{u}/hover" style="display:block;width:2000px;height:2000px">link</a>',
        "form submit": (f'<form id="f" action="{u}/form" method="post"><input name="q" value="1"></form>'
                        '<script>document.getElementById("f").submit()</script>'),
        "window.open": f'<script>window.open("{u}/popup")</script>',
        "location": f'<script>location.href = "{u}/loc"</script>',
        "user name in a navigation": f'<script>location.href = "http://{allowed}@{at}/userinfo"</script>',
        "user name in an image": f'<img src="http://{allowed}@{at}/userinfo.png">',
        "fetch": f'<script>fetch("{u}/fetch").catch(() => 0)</script>',
        "fetch no-cors": f'<script>fetch("{u}/nc", {{mode: "no-cors"}}).catch(() => 0)</script>',
        "XMLHttpRequest": f'<script>const x = new XMLHttpRequest(); x.open("GET", "{u}/xhr"); x.send()</script>',
        "WebSocket": f'<script>try {{ new WebSocket("ws://{at}/ws") }} catch (e) {{}}</script>',
        "EventSource": f'<script>new EventSource("{u}/es")</script>',
        "sendBeacon": f'<script>navigator.sendBeacon("{u}/beacon", "x")</script>',
        "service worker": f'<script>navigator.serviceWorker?.register("{u}/sw.js").catch(() => 0)</script>',
        "worker importScripts": ('<script>try { new Worker(URL.createObjectURL(new Blob(["importScripts(\\"'
                                 + u + '/w.js\\")"]))) } catch (e) {}</script>'),
        "WebRTC TURN over TCP": ("<script>try { const pc = new RTCPeerConnection({iceServers: [{urls: 'turn:"
                                 + at + "?transport=tcp', username: 'u', credential: 'c'}]}); pc.createDataChannel('d');"
                                 " pc.createOffer().then((o) => pc.setLocalDescription(o)) } catch (e) {}</script>"),
        "script-made image": f'<script>new Image().src = "{u}/dyn.png"</script>',
        "script src": f'<script src="{u}/s.js"></script>',
        "import map": ('<script type="importmap">{"imports": {"x": "' + u + '/x.js"}}</script>'
                       '<script type="module">import "x"</script>'),
        "localhost by name": f'<img src="http://localhost:{port}/lh.png">',
        "IPv4-mapped IPv6": f'<img src="http://[::ffff:127.0.0.1]:{port}/v6.png">',
        "decimal IP": f'<img src="http://2130706433:{port}/dec.png">',
        "longer port": f'<img src="http://127.0.0.1:{port}0/p.png"><img src="{u}/p2.png">',
    }


def test_the_corpus_is_large_and_every_page_aims_at_the_listener():
    pages = corpus(4321, "127.0.0.1:80")
    assert len(pages) >= 45
    assert all("4321" in html for html in pages.values())


def drain(listener: Listener, seconds: float = 1.5) -> list[bytes]:
    """What the listener saw, after giving late connections (preconnects, retries) time to arrive."""
    time.sleep(seconds)
    return list(listener.seen)


def test_renderer_opens_no_connection_for_any_page(listener):
    async def run():
        async with cb.kit.browser.launch() as browser:
            texts = {}
            for name, html in corpus(listener.port, "127.0.0.1:9").items():
                shot = await D.render(browser, f"<p>page {name}</p>" + html, timeout_s=8)
                texts[name] = [b.text for b in shot.blocks]
            await asyncio.sleep(1)  # late connections would arrive while the browser still runs
            return texts

    start = time.perf_counter()
    texts = asyncio.run(run())
    seconds = time.perf_counter() - start
    assert drain(listener) == []
    # every page rendered in place: its own text first, no navigation away
    assert all(t[:1] == [f"page {name}"] for name, t in texts.items()), texts
    print(f"{len(texts)} hostile pages rendered in {seconds:.1f} s")


def test_agents_browser_opens_no_connection_but_to_the_app(listener, tmp_path):
    names = list(corpus(listener.port, "x"))
    for i in range(len(names)):
        (tmp_path / f"{i}.html").write_text("<p>placeholder</p>")

    async def run():
        with cb.kit.assets.serve(tmp_path) as base:
            app = base.split("//", 1)[1]
            for i, html in enumerate(corpus(listener.port, app).values()):
                (tmp_path / f"{i}.html").write_text(f'<p id="mark">page {i}</p>' + html)
            async with cb.kit.browser.launch() as browser:
                page = await cb.kit.browser.new_page(browser, width=800, height=600, allow=(base,))
                loaded = []  # the app's own pages, as goto answered them (an event can be lost when
                for i in range(len(names)):  # a page's script navigates while its load finishes)
                    response = await page.goto(f"{base}/{i}.html", wait_until="load", timeout=8000)
                    loaded.append(response.url if response is not None and response.ok else None)
                    await page.mouse.move(40, 40)  # hover: Chromium preconnects to hovered links
                    await asyncio.sleep(0.2)
                refused = cb.kit.browser.blocked(page)
                await asyncio.sleep(1)
                return base, loaded, refused

    base, loaded, refused = asyncio.run(run())
    assert drain(listener) == []
    assert loaded == [f"{base}/{i}.html" for i in range(len(names))]  # the app's origin works
    assert f"http://127.0.0.1:{listener.port}/img.png" in refused  # the router saw and refused these
    assert any("/userinfo" in url for url in refused)


def test_a_context_without_router_or_proxy_still_reaches_nothing(listener):
    # the launch flags alone: a context made straight from Playwright, no route, no context proxy
    async def run():
        async with cb.kit.browser.launch() as browser:
            context = await browser.new_context()
            page = await context.new_page()
            errors = []
            for url in (f"http://127.0.0.1:{listener.port}/direct", f"http://localhost:{listener.port}/by-name",
                        "http://example.com/"):
                try:
                    await page.goto(url, timeout=5000)
                except Exception as err:  # noqa: BLE001 - Playwright's Error: the navigation failed
                    errors.append(str(err).split("\n")[0])
            await context.close()
            return errors

    errors = asyncio.run(run())
    assert drain(listener, 0.5) == []
    assert len(errors) == 3 and all("net::ERR_" in e for e in errors), errors


ORIGINS = [("http", "127.0.0.1", 8765)]


@pytest.mark.parametrize("url, passes", [
    ("http://127.0.0.1:8765/index.html", True),
    ("HTTP://127.0.0.1:8765/x?y#z", True),
    ("data:image/png;base64,AAAA", True),
    ("about:blank", True),
    ("blob:http://127.0.0.1:8765/0b1c", True),
    ("http://127.0.0.1:8765@198.51.100.7/", False),          # a user name that looks like the origin
    ("http://127.0.0.1:8765:pw@198.51.100.7/", False),
    ("http://127.0.0.1:87650/", False),                      # a port that starts like the allowed one
    ("http://127.0.0.1:8765.evil.test/", False),
    ("http://127.0.0.1.evil.test:8765/", False),             # a host that starts like the allowed one
    ("https://127.0.0.1:8765/", False),                      # another scheme
    ("ws://127.0.0.1:8765/", False),
    ("http://127.0.0.1/", False),                            # the default port is not 8765
    ("http://127.0.0.1:99999/", False),                      # does not parse
    ("file:///etc/passwd", False),
    ("javascript:alert(1)", False),
    ("", False),
])
def test_allow_list_compares_parsed_origins(url, passes):
    assert cb.kit.browser.allowed(url, ORIGINS) is passes


def test_origin_fills_default_ports_and_lowercases():
    assert cb.kit.browser.origin("HTTPS://Example.COM/a") == ("https", "example.com", 443)
    assert cb.kit.browser.origin("http://[::1]:8000/") == ("http", "::1", 8000)
    assert cb.kit.browser.origin("http://h:notaport/") is None
    assert cb.kit.browser.origin("mailto:x@y") is None


@pytest.mark.parametrize("entry", ["http://127.0.0.1:8765/app", "http://user@127.0.0.1:8765", "127.0.0.1:8765", "file:///tmp"])
def test_allow_takes_origins_only(entry):
    with pytest.raises(ValueError, match="give an origin"):  # refused before any browser is touched
        asyncio.run(cb.kit.browser.new_page(None, allow=(entry,)))


def test_the_allowed_origins_own_websocket_still_connects():
    # JupyterLab (tests/lab) talks to its kernels over ws:// on the allowed origin: the proxy lets it by
    import base64
    import hashlib

    page_html = (b'<p id="s">wait</p><script>const ws = new WebSocket("ws://" + location.host + "/ws");'
                 b'ws.onopen = () => { s.textContent = "open" }; ws.onerror = () => { s.textContent = "error" };</script>')

    def handle(conn):
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.decode("latin-1").split("\r\n")
            key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("sec-websocket-key")), None)
            if key is None:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(page_html) + page_html)
                return
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            time.sleep(2)

    app = socket.socket()
    app.bind(("127.0.0.1", 0))
    app.listen(8)

    def serve():
        while True:
            try:
                conn, _ = app.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    base = f"http://127.0.0.1:{app.getsockname()[1]}"

    async def run():
        async with cb.kit.browser.launch() as browser:
            page = await cb.kit.browser.new_page(browser, allow=(base,))
            await page.goto(base + "/index.html")
            await page.wait_for_function("document.getElementById('s').textContent !== 'wait'", timeout=8000)
            return await page.inner_text("#s")

    try:
        assert asyncio.run(run()) == "open"
    finally:
        app.close()
