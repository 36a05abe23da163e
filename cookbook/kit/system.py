"""The system pieces the cookbook needs beyond Python packages: fonts, FFmpeg, FriBiDi, Chromium.

One list, used three ways:

    python -m cookbook.kit.system            # check; exit 1 with the exact command to run if something is missing
    python -m cookbook.kit.system --install  # as root with apt-get: install what is missing, then check again

``make setup`` runs the second, so a fresh Debian/Ubuntu machine gets everything and any other
machine stops, before a test runs, with the command that fixes it. ``cb.doctor()`` (00) shows the
same checks. ``font_file`` is how the asset generators find a font: a missing font raises
``SystemPieceMissing`` naming its package, never a page drawn in tofu boxes.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
             "/Library/Fonts", "~/Library/Fonts", "/System/Library/Fonts", "C:/Windows/Fonts")

# Each font file the documents (09), designs (06) and labels (08) are drawn in, with its packages.
FONTS = {
    "NotoSans-Regular.ttf": ("fonts-noto-core", "font-noto-sans"),
    "NotoSans-Bold.ttf": ("fonts-noto-core", "font-noto-sans"),
    "NotoSansArabic-Regular.ttf": ("fonts-noto-core", "font-noto-sans-arabic"),
    "NotoSansArabic-Bold.ttf": ("fonts-noto-core", "font-noto-sans-arabic"),
    "NotoSansCJK-Regular.ttc": ("fonts-noto-cjk", "font-noto-sans-cjk"),
    "NotoSansCJK-Bold.ttc": ("fonts-noto-cjk", "font-noto-sans-cjk"),
    "DejaVuSans.ttf": ("fonts-dejavu-core", "font-dejavu"),
}


class SystemPieceMissing(RuntimeError):
    """A system package the cookbook needs is not installed; the message names it."""


@dataclass(frozen=True)
class Piece:
    """One system requirement: what it is for, how to check it, and which packages provide it."""

    name: str
    why: str
    check: Callable[[], str | None]  # None when fine, else what is missing
    apt: tuple[str, ...]
    brew: tuple[str, ...] = ()


def font_file(name: str) -> str:
    """The path of an installed font file such as ``NotoSansCJK-Regular.ttc``, or ``SystemPieceMissing``."""
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if root.is_dir():
            for found in sorted(root.rglob(name)):
                return str(found)
    apt, brew = FONTS.get(name, ("a package that provides it", ""))
    raise SystemPieceMissing(f"font {name} is not installed: {install_command([apt], [brew] if brew else [])}")


def _fonts() -> str | None:
    missing = []
    for name in FONTS:
        try:
            font_file(name)
        except SystemPieceMissing:
            missing.append(name)
    return ", ".join(missing) or None


def _raqm() -> str | None:
    from PIL import features

    return None if features.check("raqm") else "Pillow cannot shape Arabic (libraqm needs FriBiDi)"


def _ffmpeg() -> str | None:
    try:
        from torchcodec.decoders import VideoDecoder

        VideoDecoder(b"not a video")  # FFmpeg's libraries load first, then this fails to decode
    except Exception as err:  # noqa: BLE001 - torchcodec raises RuntimeError listing each FFmpeg it tried
        if "libtorchcodec" in str(err) or isinstance(err, ImportError):
            return "torchcodec cannot load FFmpeg's shared libraries (libavutil, libavcodec, ...)"
    return None


def _chromium() -> str | None:
    from cookbook.kit.browser import chromium_executable

    return None if chromium_executable() else "no Chromium for Playwright"


PIECES = (
    Piece("fonts", "documents (09), designs (06) and labels (08) in seven languages", _fonts,
          ("fonts-noto-core", "fonts-noto-cjk", "fonts-dejavu-core"),
          ("font-noto-sans", "font-noto-sans-arabic", "font-noto-sans-cjk", "font-dejavu")),
    Piece("fribidi", "Arabic shaped right to left in the generated documents (09)", _raqm,
          ("libfribidi0",), ("fribidi",)),
    Piece("ffmpeg", "torchcodec, the video reader qwen-vl-utils prefers (07)", _ffmpeg, ("ffmpeg",), ("ffmpeg",)),
    Piece("chromium", "the browser Playwright drives (05, 06, the JupyterLab test)", _chromium,
          ("chromium",), ()),
)


def missing() -> list[tuple[Piece, str]]:
    """Each piece that fails its check, with what is missing (00)."""
    return [(p, problem) for p in PIECES if (problem := p.check()) is not None]


def install_command(apt: list[str], brew: list[str]) -> str:
    """The one command that installs these packages on this machine (apt-get, else Homebrew)."""
    if platform.system() == "Darwin":
        formulae = [b for b in brew if not b.startswith("font-")]
        casks = [b for b in brew if b.startswith("font-")]
        parts = [f"brew install {' '.join(formulae)}"] if formulae else []
        parts += [f"brew install --cask {' '.join(casks)}"] if casks else []
        return " && ".join(parts) or "nothing to install with Homebrew"
    packages = " ".join(sorted(set(apt)))
    if not shutil.which("apt-get"):
        return f"install them with your system's package manager (their Debian/Ubuntu names: {packages})"
    sudo = "" if _is_root() else "sudo "
    return f"{sudo}apt-get update && {sudo}apt-get install -y {packages}"


def fix(pieces: list[Piece]) -> str:
    """The command(s) that fix these pieces; Chromium can also come from Playwright's own download."""
    apt = [pkg for p in pieces for pkg in _needed(p, 0)]
    brew = [pkg for p in pieces for pkg in _needed(p, 1)]
    text = install_command(apt, brew) if (apt if platform.system() != "Darwin" else brew) else ""
    if any(p.name == "chromium" for p in pieces):
        own = f"{Path(sys.executable).parent / 'playwright'} install chromium"
        text = f"{text}   (or, for Chromium alone: {own})" if text else own
    return text


def _needed(piece: Piece, manager: int) -> tuple[str, ...]:
    """The packages a piece still needs (0: apt, 1: Homebrew): for fonts, only those of missing files."""
    if piece.name != "fonts" or piece.check is not _fonts:
        return (piece.apt, piece.brew)[manager]
    missing = (piece.check() or "").split(", ")
    return tuple(sorted({FONTS[name][manager] for name in missing if name in FONTS}))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _try_playwright_chromium() -> bool:
    """Download Playwright's Chromium; False where that cannot reach its server."""
    playwright = Path(sys.executable).parent / "playwright"
    if not playwright.exists():
        return False
    done = subprocess.run([str(playwright), "install", "chromium"], capture_output=True, text=True)
    return done.returncode == 0


def main(argv: list[str]) -> int:
    """Check (and with ``--install``, install as root with apt) every system piece; 1 if any is missing."""
    install = "--install" in argv
    todo = missing()
    if todo and install:
        if any(p.name == "chromium" for p, _ in todo) and _try_playwright_chromium():
            todo = missing()
        apt = sorted({pkg for p, _ in todo for pkg in _needed(p, 0)})
        if apt and _is_root() and shutil.which("apt-get") and platform.system() == "Linux":
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            print(f"Installing system packages: {' '.join(apt)}", flush=True)
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", *apt], check=True, env=env, stdout=subprocess.DEVNULL)
            todo = missing()
    for piece in PIECES:
        problem = next((m for p, m in todo if p is piece), None)
        print(f"{'ok' if problem is None else '!!'} {piece.name:9} {problem or piece.why}")
    if todo:
        print(f"\nMissing system packages. Run:\n    {fix([p for p, _ in todo])}\nthen run make setup again.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
