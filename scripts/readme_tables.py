"""Write the notebook tables of README.md and README.zh-CN.md from notebooks/manifest.json.

The manifest is the one source for each notebook's title, what it teaches (English and Chinese),
the hardware it needs and its measured run times; the tables live between the marker comments
``<!-- notebooks:start -->`` and ``<!-- notebooks:end -->``. ``--check`` changes nothing and exits
1 when a README is out of date (tests/test_manifest.py runs the same check).

    python scripts/readme_tables.py          # rewrite the tables
    python scripts/readme_tables.py --check  # fail if they differ from the manifest
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "notebooks" / "manifest.json"
START, END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
READMES = {"en": ROOT / "README.md", "zh": ROOT / "README.zh-CN.md"}
HEAD = {
    "en": ("| notebook | you will be able to | hardware | smoke run | in JupyterLab |\n"
           "|---|---|---|---|---|"),
    "zh": ("| 笔记本 | 学完你能 | 硬件 | 冒烟运行 | JupyterLab 中运行 |\n"
           "|---|---|---|---|---|"),
}
NOTE = {
    "en": ("Times: the notebook executed headless by nbmake (`make test`) and run cell by cell in "
           "JupyterLab in Chromium (`tests/lab`), both in smoke mode (tiny model, CPU), measured in one "
           "`CI=true bash .ci/run` on a fresh clone on a 2-core machine (see Timing); a real checkpoint "
           "on a GPU takes longer (see each notebook's box)."),
    "zh": ("耗时：笔记本由 nbmake 无界面执行（`make test`），以及在 Chromium 中的 JupyterLab 里逐格运行"
           "（`tests/lab`），均为冒烟模式（tiny 模型，CPU），在一台 2 核机器上对全新克隆运行 `CI=true bash .ci/run` 时测得；"
           "在 GPU 上使用真实模型会更久"
           "（见各笔记本开头的说明框）。"),
}


def load(path: Path = MANIFEST) -> list[dict]:
    """The manifest's rows, in notebook order."""
    return json.loads(path.read_text(encoding="utf-8"))["notebooks"]


def duration(seconds: float | None, lang: str) -> str:
    """``2 min 5 s`` / ``2 分 5 秒``; a dash when not measured."""
    if seconds is None:
        return "—"
    s = round(seconds)
    m, s = divmod(s, 60)
    if lang == "zh":
        return f"{m} 分 {s} 秒" if m else f"{s} 秒"
    return f"{m} min {s} s" if m else f"{s} s"


def table(rows: list[dict], lang: str) -> str:
    """The Markdown table of one language, with its note."""
    lines = [HEAD[lang]]
    for r in rows:
        stem = r["notebook"].removesuffix(".ipynb")
        cells = [f"[{stem}](notebooks/{r['notebook']})", r["learn"][lang], r["hardware"][lang],
                 duration(r["smoke_seconds"], lang), duration(r["lab_seconds"], lang)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + NOTE[lang]


def between(text: str) -> tuple[str, str, str]:
    """Split a README into (before, inside, after) the markers; a clear error when they are missing."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"the README needs exactly one {START} ... {END} pair")
    before, rest = text.split(START)
    inside, after = rest.split(END)
    return before, inside, after


def render(text: str, rows: list[dict], lang: str) -> str:
    """The README text with the table between the markers replaced."""
    before, _, after = between(text)
    return f"{before}{START}\n{table(rows, lang)}\n{END}{after}"


def main(argv: list[str]) -> int:
    rows = load()
    stale = []
    for lang, path in READMES.items():
        text = path.read_text(encoding="utf-8")
        new = render(text, rows, lang)
        if new != text:
            stale.append(path.name)
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    if "--check" in argv and stale:
        print(f"out of date with notebooks/manifest.json: {', '.join(stale)}; run python scripts/readme_tables.py")
        return 1
    print(("rewrote " + ", ".join(stale)) if stale else "README tables are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
