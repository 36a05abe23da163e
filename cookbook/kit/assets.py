"""Find the files in ``assets/`` (photos, videos, pages) from any working directory."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"


def asset(name: str) -> Path:
    """The path of ``assets/<name>``; a clear error lists what is there when it is missing (01)."""
    path = ASSETS / name
    if not path.is_file():
        have = ", ".join(sorted(p.name for p in ASSETS.iterdir() if p.suffix != ".md")) if ASSETS.is_dir() else "nothing"
        raise FileNotFoundError(f"no asset {name!r} in {ASSETS}; available: {have}")
    return path


@contextlib.contextmanager
def serve(folder: Path = ASSETS) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 for the length of a ``with`` block; yields the base URL.

    Lets the notebooks exercise image-URL code paths with no internet (01_first_image_chat).
    """
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

