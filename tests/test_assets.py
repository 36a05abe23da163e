import urllib.request

import pytest

import cookbook as cb
from cookbook.assets import ASSETS, serve


def test_every_asset_is_documented():
    readme = (ASSETS / "README.md").read_text()
    files = [p.name for p in ASSETS.iterdir() if p.name != "README.md"]
    assert files, "assets/ is empty"
    for name in files:
        assert f"`{name}`" in readme, f"{name} is not in assets/README.md"
        assert (ASSETS / name).stat().st_size < 2_000_000, f"{name} is large"


def test_asset_lookup():
    assert cb.asset("chelsea.jpg").is_file()
    with pytest.raises(FileNotFoundError, match="chelsea.jpg"):
        cb.asset("dog.jpg")


def test_serve_gives_the_same_bytes():
    with serve() as base:
        body = urllib.request.urlopen(f"{base}/coffee.jpg", timeout=5).read()
    assert body == cb.asset("coffee.jpg").read_bytes()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/coffee.jpg", timeout=1)
