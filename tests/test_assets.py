import urllib.request

import pytest

import cookbook as cb
from cookbook.kit.assets import ASSETS, serve


def test_every_asset_is_documented():
    """Top-level files in assets/README.md; each folder (one per notebook) has its own README.md."""
    readme = (ASSETS / "README.md").read_text()
    entries = [p for p in ASSETS.iterdir() if p.name != "README.md"]
    assert entries, "assets/ is empty"
    for path in entries:
        if path.is_dir():
            assert (path / "README.md").is_file() or f"`{path.name}" in readme, f"{path.name}/ has no README.md"
        else:
            assert f"`{path.name}`" in readme, f"{path.name} is not in assets/README.md"
    for path in ASSETS.rglob("*"):
        assert not path.is_file() or path.stat().st_size < 2_000_000, f"{path.relative_to(ASSETS)} is large"


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
