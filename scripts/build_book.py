"""Lay out the book's pages (build/book-src/) for `make book`, which then runs `mkdocs build`.

    .venv/bin/python scripts/build_book.py

Pages: the README (index), the Chinese README (zh), and every notebook as JupyterLab saved it after
its passing run in `make lab-test` (build/executed/), so the outputs are the ones CI produced. Each
notebook page opens with a note saying which model produced its answers. Files the READMEs link to
(docs/, the GPU check's JSON, ...) are copied beside them so no link breaks. A notebook with no
executed copy is an error: the book never shows a stripped notebook as if it had run.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "build" / "executed"
SRC = ROOT / "build" / "book-src"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def answered_by(notebook: str) -> str:
    """Who answered in this page's outputs: CI runs every notebook with the tiny random model."""
    from cookbook.runtime.settings import settings

    s = settings()
    if not s.smoke:
        raise SystemExit("build the book from a smoke run: COOKBOOK_MODEL=tiny (as `make book` sets)")
    text = (f"the tiny random-weight Qwen3-VL built on the CI machine (`COOKBOOK_MODEL={s.model}`): same "
            "architecture, processor and chat template as Qwen3-VL, random weights, so its answers are "
            "nonsense by design. No real checkpoint ran")
    if "fine_tuning" in notebook:
        text += "; the trained model on this page is a tiny model trained here in CI, not Qwen3-VL"
    return text + "."


def note_cell(notebook: str, when: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": [
        f"> **Outputs from CI's smoke run** ({when}, JupyterLab on a 2-core CPU, no GPU). "
        f"The answers below come from {answered_by(notebook)} "
        f"Run the notebook yourself with a real checkpoint for real answers (`notebooks/{notebook}`)."]}


def copy_linked(markdown: str, source_dir: Path, dest_dir: Path, seen: set[Path] | None = None) -> None:
    """Copy each repository file a page links to (not notebooks, which are pages) beside the page."""
    seen = set() if seen is None else seen
    for target, _ in LINK.findall(markdown):
        if "://" in target or target.endswith(".ipynb"):
            continue
        src = (source_dir / target).resolve()
        if src.is_file() and ROOT in src.parents and src not in seen:
            seen.add(src)
            dest = dest_dir / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            if src.suffix == ".md":
                copy_linked(src.read_text(encoding="utf-8"), src.parent, dest.parent, seen)


def main() -> int:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [p.name for p in notebooks if not (EXECUTED / p.name).is_file()]
    if missing:
        print(f"no executed copy of {', '.join(missing)} in {EXECUTED}: run `make lab-test` first",
              file=sys.stderr)
        return 1
    shutil.rmtree(SRC, ignore_errors=True)
    (SRC / "notebooks").mkdir(parents=True)
    when = date.today().isoformat()
    for path in notebooks:
        nb = json.loads((EXECUTED / path.name).read_text(encoding="utf-8"))
        nb["cells"].insert(1, note_cell(path.name, when))
        (SRC / "notebooks" / path.name).write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    for readme, page in (("README.md", "index.md"), ("README.zh-CN.md", "zh.md")):
        text = (ROOT / readme).read_text(encoding="utf-8")
        text = text.replace("(README.zh-CN.md)", "(zh.md)").replace("(README.md)", "(index.md)")
        (SRC / page).write_text(text, encoding="utf-8")
        copy_linked(text, ROOT, SRC)
    print(f"book pages in {SRC}: 2 READMEs, {len(notebooks)} executed notebooks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
