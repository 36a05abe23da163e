"""One table of notebooks: notebooks/manifest.json drives the README tables in both languages
(scripts/readme_tables.py); these tests fail when a notebook is missing from the manifest, when a
title drifted, or when a README table disagrees with the manifest."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _script():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _script()
ROWS = tables.load()


def test_every_notebook_has_one_row_and_every_row_a_notebook():
    listed = [r["notebook"] for r in ROWS]
    assert len(listed) == len(set(listed)), "a notebook is listed twice"
    assert sorted(set(NOTEBOOKS) - set(listed)) == [], "notebooks missing from notebooks/manifest.json"
    assert sorted(set(listed) - set(NOTEBOOKS)) == [], "manifest rows without a notebook"
    assert listed == sorted(listed), "rows in notebook order"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["notebook"])
def test_row_is_complete_and_title_matches_the_notebook(row):
    nb = json.loads((ROOT / "notebooks" / row["notebook"]).read_text(encoding="utf-8"))
    first = "".join(nb["cells"][0]["source"]).splitlines()[0]
    assert first == f"# {row['title']}", "the manifest's title differs from the notebook's"
    for key in ("learn", "hardware"):
        assert row[key]["en"].strip() and row[key]["zh"].strip(), f"{key} needs English and Chinese"
    for key in ("smoke_seconds", "lab_seconds"):
        assert row[key] is None or row[key] > 0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_readme_table_is_the_manifest(lang):
    text = tables.READMES[lang].read_text(encoding="utf-8")
    assert tables.render(text, ROWS, lang) == text, (
        f"{tables.READMES[lang].name} disagrees with notebooks/manifest.json: run python scripts/readme_tables.py")
    _, inside, _ = tables.between(text)
    for row in ROWS:
        assert f"](notebooks/{row['notebook']})" in inside and row["learn"][lang].replace("|", "\\|") in inside


def test_a_changed_row_is_caught():
    text = tables.READMES["en"].read_text(encoding="utf-8")
    changed = [dict(r) for r in ROWS]
    changed[0] = {**changed[0], "smoke_seconds": (changed[0]["smoke_seconds"] or 0) + 61}
    assert tables.render(text, changed, "en") != text
    assert tables.render(text, ROWS[1:], "en") != text


def test_durations_and_markers():
    assert tables.duration(None, "en") == "—"
    assert tables.duration(59.6, "en") == "1 min 0 s"
    assert tables.duration(125, "zh") == "2 分 5 秒"
    assert tables.duration(7.2, "en") == "7 s"
    with pytest.raises(ValueError, match="notebooks:start"):
        tables.between("no markers here")
