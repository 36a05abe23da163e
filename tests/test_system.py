"""System packages: one list checked by `make setup`, `python -m cookbook.kit.system` and the doctor; a
missing piece stops with the exact command, and generators raise naming the package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from cookbook.kit import system

ROOT = Path(__file__).parent.parent


def test_every_piece_is_present_after_make_setup():
    assert system.missing() == []


def test_font_file_finds_each_font_the_generators_use():
    for name in system.FONTS:
        assert Path(system.font_file(name)).is_file()


def test_a_missing_font_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setattr(system, "FONT_DIRS", (str(tmp_path),))
    with pytest.raises(system.SystemPieceMissing, match="NotoSansCJK-Regular.ttc.*fonts-noto-cjk"):
        system.font_file("NotoSansCJK-Regular.ttc")
    assert "NotoSansArabic-Regular.ttf" in system._fonts()


def test_document_generator_refuses_to_draw_without_its_font(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("make_documents", ROOT / "scripts" / "make_documents.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.load_font(gen.font_spec("zh"), 20).getname()[0] == "Noto Sans CJK SC"
    monkeypatch.setattr(system, "FONT_DIRS", (str(tmp_path),))
    with pytest.raises(system.SystemPieceMissing, match="fonts-noto-core"):
        gen.load_font(gen.font_spec("ar"), 20)


def test_missing_pieces_stop_with_the_exact_apt_command(monkeypatch, capsys):
    absent = system.Piece("fonts", "test", lambda: "NotoSans-Regular.ttf", ("fonts-noto-core", "fonts-noto-cjk"))
    monkeypatch.setattr(system, "PIECES", (absent,))
    monkeypatch.setattr(system, "_is_root", lambda: False)
    monkeypatch.setattr(system.platform, "system", lambda: "Linux")
    assert system.main([]) == 1
    err = capsys.readouterr().err
    assert "sudo apt-get update && sudo apt-get install -y fonts-noto-cjk fonts-noto-core" in err
    # --install as a non-root user installs nothing and stops the same way
    assert system.main(["--install"]) == 1
    assert "sudo apt-get install" in capsys.readouterr().err
    # a Linux without apt-get (Fedora, Arch, ...) is told the packages, not an apt command
    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    assert system.main(["--install"]) == 1
    err = capsys.readouterr().err
    assert "apt-get" not in err and "Debian/Ubuntu names: fonts-noto-cjk fonts-noto-core" in err


def test_only_the_missing_fonts_packages_are_named(monkeypatch, tmp_path):
    (tmp_path / "DejaVuSans.ttf").write_bytes(b"")
    monkeypatch.setattr(system, "FONT_DIRS", (str(tmp_path),))
    monkeypatch.setattr(system.platform, "system", lambda: "Linux")
    monkeypatch.setattr(system.shutil, "which", lambda name: "/usr/bin/apt-get")
    fonts = next(p for p in system.PIECES if p.name == "fonts")
    assert system.fix([fonts]).endswith("apt-get install -y fonts-noto-cjk fonts-noto-core")


def test_macos_gets_homebrew_commands(monkeypatch, tmp_path):
    monkeypatch.setattr(system, "FONT_DIRS", (str(tmp_path),))  # every font missing
    monkeypatch.setattr(system.platform, "system", lambda: "Darwin")
    text = system.fix([p for p in system.PIECES if p.name in ("fonts", "ffmpeg")])
    assert text == ("brew install ffmpeg && brew install --cask "
                    "font-dejavu font-noto-sans font-noto-sans-arabic font-noto-sans-cjk")
    assert "apt-get" not in text


def test_chromium_fix_offers_playwright_download():
    chromium = next(p for p in system.PIECES if p.name == "chromium")
    assert "playwright install chromium" in system.fix([chromium])


def test_ffmpeg_check_tells_a_missing_library_apart(monkeypatch):
    assert system._ffmpeg() is None  # torchcodec loads FFmpeg here
    import torchcodec.decoders as dec

    def broken(*args, **kwargs):
        raise RuntimeError("Could not load libtorchcodec. Likely causes: FFmpeg is not properly installed")

    monkeypatch.setattr(dec, "VideoDecoder", broken)
    assert "FFmpeg" in system._ffmpeg()


def test_doctor_lists_the_same_pieces():
    import cookbook as cb

    names = {c.name for c in cb.doctor().checks}
    assert {p.name for p in system.PIECES} <= names


def test_setup_runs_the_system_check_and_ci_installs_nothing_itself():
    makefile = (ROOT / "Makefile").read_text()
    assert "-m cookbook.kit.system --install" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in ci and "pip install" not in ci


def test_command_line_exit_code():
    done = subprocess.run([sys.executable, "-m", "cookbook.kit.system"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok ") == len(system.PIECES)
